import LibPQ

/// What a PostgreSQL failure says about the database, as opposed to one statement's input: the one table, by
/// ``LibPQ/SQLState`` names and classes, that the connector and the consumer classify failures with.
///
/// The verdicts built on it may differ (the connector stops on a missing table, the consumer waits for the
/// migration), the table may not: a new SQLSTATE is added here once, with the reason an operator reads.
package enum DatabaseCondition: Hashable, Sendable {
    /// Connecting failed or the connection broke (libpq's failures, class `08`).
    case unreachable
    /// The connection was closed by this side.
    case closed
    /// The server answered something the protocol does not allow.
    case protocolViolation
    /// The server is shutting down or restarting (`57P01` … `57P05`).
    case shuttingDown
    /// Another operator intervention (class `57` other than a cancel or a shutdown).
    case operatorIntervention
    /// A statement was cancelled or timed out (`57014`).
    case statementCancelled
    /// The server has too many connections (`53300`).
    case tooManyConnections
    /// The server is out of another resource (class `53`: disk, memory).
    case outOfResources
    /// The server hit a system error (class `58`).
    case systemError
    /// A serialization failure (`40001`).
    case serializationFailure
    /// A deadlock (`40P01`).
    case deadlock
    /// The database is read-only (`25006`): a failover under way, or a standby.
    case readOnly
    /// A table, column or schema does not exist (`42P01`, `42703`, `3F000`): migrations not run.
    case schemaMissing(SQLState)
    /// The role lacks a privilege (`42501`).
    case insufficientPrivilege
    /// A lock was not available in time (`55P03`).
    case lockNotAvailable
    /// An object is in use (`55006`), such as a replication slot another process streams from.
    case objectInUse

    /// The condition `error` describes, or `nil` when it belongs to the statement (a constraint, bad input, …).
    package init?(_ error: PostgresError) {
        switch error.code {
        case .connectionFailed, .connectionLost: self = .unreachable; return
        case .closed: self = .closed; return
        case .protocolViolation: self = .protocolViolation; return
        default: break
        }
        guard let state = error.sqlState, state.rawValue.count == 5 else { return nil }
        switch state {
        case .queryCanceled: self = .statementCancelled
        case .tooManyConnections: self = .tooManyConnections
        case .serializationFailure: self = .serializationFailure
        case .deadlockDetected: self = .deadlock
        case .readOnlySQLTransaction: self = .readOnly
        case .undefinedTable, .undefinedColumn, .invalidSchemaName: self = .schemaMissing(state)
        case .insufficientPrivilege: self = .insufficientPrivilege
        case .lockNotAvailable: self = .lockNotAvailable
        case .objectInUse: self = .objectInUse
        default:
            switch state.errorClass {
            case .connectionException: self = .unreachable
            case .operatorIntervention: self = state.rawValue.hasPrefix("57P") ? .shuttingDown : .operatorIntervention
            case .insufficientResources: self = .outOfResources
            case .systemError: self = .systemError
            default: return nil
            }
        }
    }

    /// Whether the same work can succeed on a new connection or a retry without anyone acting: the server comes
    /// back, the conflict clears. A missing table, a privilege, a read-only server or a cancelled statement need
    /// someone (or something slower) to act.
    package var clearsByItself: Bool {
        switch self {
        case .unreachable, .shuttingDown, .operatorIntervention, .tooManyConnections, .serializationFailure, .deadlock, .objectInUse:
            true
        case .closed, .protocolViolation, .statementCancelled, .outOfResources, .systemError, .readOnly, .schemaMissing,
             .insufficientPrivilege, .lockNotAvailable:
            false
        }
    }

    /// Whether the connection that raised it must be replaced before the next attempt.
    package var dropsConnection: Bool {
        switch self {
        case .unreachable, .closed, .protocolViolation, .shuttingDown, .systemError: true
        default: false
        }
    }

    /// What an operator should look at.
    package func reason(_ error: PostgresError) -> String {
        let state = error.sqlState.map { "SQLSTATE \($0)" } ?? error.code.description
        return switch self {
        case .unreachable where error.sqlState != nil:
            "the database connection failed (\(state)); check that it is running and reachable"
        case .unreachable, .closed: "the database is unreachable; check that it is running and reachable"
        case .protocolViolation: "the database connection misbehaved; reconnecting"
        case .shuttingDown, .operatorIntervention: "the database is shutting down or restarting (\(state))"
        case .statementCancelled: "a statement was cancelled or timed out (\(state)); check statement_timeout and long locks"
        case .tooManyConnections: "the database has too many connections (\(state)); raise max_connections or pool"
        case .outOfResources: "the database server is out of a resource (\(state), e.g. disk full or out of memory); free it"
        case .systemError: "the database server hit a system error (\(state)); see its log"
        case .serializationFailure: "serialization failure (\(state)); retrying"
        case .deadlock: "deadlock (\(state)); retrying"
        case .readOnly: "the database is read-only (\(state)): a failover in progress, or connected to a standby"
        case .schemaMissing(let missing):
            "a \(missing == .undefinedColumn ? "column" : missing == .invalidSchemaName ? "schema" : "table") does not exist (\(state)): run the service's migrations"
        case .insufficientPrivilege: "insufficient privilege (\(state)): grant the consumer's role access"
        case .lockNotAvailable: "a lock was not available in time (\(state)); another session holds it"
        case .objectInUse: "an object is in use (\(state)); retrying"
        }
    }
}
