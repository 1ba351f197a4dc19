/// A PostgreSQL error code (SQLSTATE): five characters, the first two naming its class.
///
/// Compare with the named codes and classes rather than with string literals:
///
/// ```swift
/// if error.sqlState == .objectInUse { … }                       // 55006, e.g. a replication slot in use
/// if error.sqlState?.errorClass == .connectionException { … }   // 08xxx
/// ```
///
/// A string literal still works (`error.sqlState == "23505"`), and any code the server sends is kept, named here or
/// not: new codes in later PostgreSQL versions break nothing. See the PostgreSQL documentation's "PostgreSQL Error
/// Codes" appendix for the full list.
public struct SQLState: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The five characters, e.g. `55006`.
    public let rawValue: String

    /// Wraps a code as the server sent it.
    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// A code written as a literal, e.g. `"23505"`.
    public init(stringLiteral value: String) {
        self.rawValue = value
    }

    /// The code's class: its first two characters.
    public var errorClass: Class { Class(String(rawValue.prefix(2))) }

    public var description: String { rawValue }

    /// An SQLSTATE class: the first two characters of a code.
    public struct Class: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
        /// The two characters, e.g. `08`.
        public let rawValue: String

        /// Wraps a class.
        public init(_ rawValue: String) {
            self.rawValue = rawValue
        }

        /// A class written as a literal, e.g. `"08"`.
        public init(stringLiteral value: String) {
            self.rawValue = value
        }

        public var description: String { rawValue }

        /// `08`: the connection broke or could not be made.
        public static let connectionException: Class = "08"
        /// `25`: invalid transaction state (read-only transaction, idle-in-transaction timeout, …).
        public static let invalidTransactionState: Class = "25"
        /// `40`: the transaction was rolled back (serialization failure, deadlock).
        public static let transactionRollback: Class = "40"
        /// `42`: syntax error or access rule violation (undefined table or column, insufficient privilege, …).
        public static let syntaxErrorOrAccessRuleViolation: Class = "42"
        /// `53`: insufficient resources (disk full, out of memory, too many connections).
        public static let insufficientResources: Class = "53"
        /// `55`: object not in prerequisite state (object in use, lock not available).
        public static let objectNotInPrerequisiteState: Class = "55"
        /// `57`: operator intervention (query cancelled or timed out, server shutting down).
        public static let operatorIntervention: Class = "57"
        /// `58`: system error (I/O error outside PostgreSQL).
        public static let systemError: Class = "58"
    }

    /// `23505`: a unique constraint was violated.
    public static let uniqueViolation: SQLState = "23505"
    /// `25006`: a write in a read-only transaction (a standby, or a primary during failover).
    public static let readOnlySQLTransaction: SQLState = "25006"
    /// `3F000`: the schema does not exist.
    public static let invalidSchemaName: SQLState = "3F000"
    /// `26000`: the prepared statement does not exist (deallocated, or never prepared on this connection).
    public static let invalidSQLStatementName: SQLState = "26000"
    /// `40001`: serialization failure; retry the transaction.
    public static let serializationFailure: SQLState = "40001"
    /// `40P01`: deadlock detected; retry the transaction.
    public static let deadlockDetected: SQLState = "40P01"
    /// `42501`: the role lacks a privilege.
    public static let insufficientPrivilege: SQLState = "42501"
    /// `42601`: syntax error.
    public static let syntaxError: SQLState = "42601"
    /// `42703`: undefined column.
    public static let undefinedColumn: SQLState = "42703"
    /// `42704`: undefined object (e.g. a replication slot that does not exist).
    public static let undefinedObject: SQLState = "42704"
    /// `42710`: duplicate object (e.g. a replication slot that already exists).
    public static let duplicateObject: SQLState = "42710"
    /// `42P01`: undefined table.
    public static let undefinedTable: SQLState = "42P01"
    /// `53100`: disk full.
    public static let diskFull: SQLState = "53100"
    /// `53300`: too many connections.
    public static let tooManyConnections: SQLState = "53300"
    /// `55006`: object in use (e.g. a replication slot another process streams from).
    public static let objectInUse: SQLState = "55006"
    /// `55P03`: lock not available (`lock_timeout`, `NOWAIT`).
    public static let lockNotAvailable: SQLState = "55P03"
    /// `57014`: query cancelled (including `statement_timeout`).
    public static let queryCanceled: SQLState = "57014"
    /// `57P01`: the server is shutting down (administrator command).
    public static let adminShutdown: SQLState = "57P01"
    /// `57P02`: crash shutdown.
    public static let crashShutdown: SQLState = "57P02"
    /// `57P03`: the server cannot accept connections now (starting up, recovering).
    public static let cannotConnectNow: SQLState = "57P03"
}
