import LibPQ
@testable import OutboxConsumer
import Testing

/// What a statement handler produces, without a connection.
@Suite struct EventStatementsTests {
    @Test func statementsKeepTheirOrderKindAndParameters() {
        let upsert = PreparedStatement("INSERT INTO counts (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = counts.n + 1")
        var statements = EventStatements()
        #expect(statements.isEmpty)
        statements.execute("INSERT INTO ledger (event_id, n) VALUES ($1, $2)", ["e-1", 7])
        statements.execute(upsert, ["p-1"])
        statements.execute("DELETE FROM pending WHERE id = $1", [nil])
        #expect(statements.statements.count == 3 && !statements.isEmpty)
        guard case .text(let first) = statements.statements[0].kind, case .prepared(let second) = statements.statements[1].kind,
              case .text(let third) = statements.statements[2].kind else {
            Issue.record("text, prepared, text expected")
            return
        }
        #expect(first.hasPrefix("INSERT INTO ledger") && second == upsert && third.hasPrefix("DELETE"))
        #expect(statements.statements[0].parameters == [.text("e-1"), .text("7")])
        #expect(statements.statements[1].parameters == [.text("p-1")])
        #expect(statements.statements[2].parameters == [.null])
    }
}
