import LibPQ
import ServiceRuntime
import Testing

/// The one SQLSTATE table the connector and the consumer classify with.
@Suite struct DatabaseConditionTests {
    func server(_ state: SQLState) -> PostgresError {
        PostgresError(code: .queryFailed, message: "m", sqlState: state)
    }

    @Test func libpqFailuresAreTheConnections() {
        #expect(DatabaseCondition(PostgresError(code: .connectionFailed, message: "refused")) == .unreachable)
        #expect(DatabaseCondition(PostgresError(code: .connectionLost, message: "closed")) == .unreachable)
        #expect(DatabaseCondition(PostgresError(code: .closed, message: "closed")) == .closed)
        #expect(DatabaseCondition(PostgresError(code: .protocolViolation, message: "?")) == .protocolViolation)
    }

    @Test func statesAndClassesByName() {
        let expected: [(SQLState, DatabaseCondition)] = [
            ("08006", .unreachable), ("08001", .unreachable), (.adminShutdown, .shuttingDown), (.crashShutdown, .shuttingDown),
            (.cannotConnectNow, .shuttingDown), ("57000", .operatorIntervention), (.queryCanceled, .statementCancelled),
            (.tooManyConnections, .tooManyConnections), (.diskFull, .outOfResources), ("53200", .outOfResources), ("58030", .systemError),
            (.serializationFailure, .serializationFailure), (.deadlockDetected, .deadlock), (.readOnlySQLTransaction, .readOnly),
            (.undefinedTable, .schemaMissing(.undefinedTable)), (.undefinedColumn, .schemaMissing(.undefinedColumn)),
            (.invalidSchemaName, .schemaMissing(.invalidSchemaName)), (.insufficientPrivilege, .insufficientPrivilege),
            (.lockNotAvailable, .lockNotAvailable), (.objectInUse, .objectInUse),
        ]
        for (state, condition) in expected {
            #expect(DatabaseCondition(server(state)) == condition, "SQLSTATE \(state)")
            #expect(!(DatabaseCondition(server(state))?.reason(server(state)).isEmpty ?? true))
        }
    }

    @Test func aStatementsOwnErrorIsNoConditionOfTheDatabase() {
        for state: SQLState in [.uniqueViolation, "23503", "22P02", .syntaxError, "P0001"] {
            #expect(DatabaseCondition(server(state)) == nil, "SQLSTATE \(state)")
        }
    }

    /// What clears without anyone acting (the connector waits it out) and what needs a new connection.
    @Test func verdictsOfTheTable() {
        let clears: [SQLState] = ["08006", .adminShutdown, .serializationFailure, .deadlockDetected, .objectInUse, .tooManyConnections]
        let needsSomeone: [SQLState] = [.queryCanceled, .insufficientPrivilege, .undefinedTable, .readOnlySQLTransaction, .diskFull]
        #expect(clears.allSatisfy { DatabaseCondition(server($0))?.clearsByItself == true })
        #expect(needsSomeone.allSatisfy { DatabaseCondition(server($0))?.clearsByItself == false })
        #expect(DatabaseCondition(PostgresError(code: .connectionLost, message: "m"))?.clearsByItself == true)
        let drops: [SQLState] = ["08006", .adminShutdown, "58030"]
        #expect(drops.allSatisfy { DatabaseCondition(server($0))?.dropsConnection == true })
        #expect(DatabaseCondition(server(.readOnlySQLTransaction))?.dropsConnection == false, "a read-only transaction leaves the connection usable")
        #expect(DatabaseCondition(server(.undefinedTable))?.reason(server(.undefinedTable)).contains("run the service's migrations") == true)
    }
}
