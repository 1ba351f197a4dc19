import Foundation
import OutboxConnector
import PGOutput
import Testing

/// The `/status` document, rendered without a connector.
@Suite struct ConnectorStatusTests {
    static let since = Date(timeIntervalSince1970: 1_765_065_600.25)

    @Test func aStreamingConnectorRendersEveryKeyInOrder() throws {
        let status = ConnectorStatus(connector: "commerce-outbox", state: .running, phase: "streaming", since: Self.since,
                                     slot: "tailgate_commerce", confirmedLSN: LSN("0/1A2B3C8"), acknowledgedLSN: LSN("0/1A2B400"),
                                     inFlightRecords: 12, kafkaReachable: true)
        #expect(status.json == """
            {
              "connector": "commerce-outbox",
              "state": "RUNNING",
              "phase": "streaming",
              "since": "2025-12-07T00:00:00.250000Z",
              "slot": "tailgate_commerce",
              "waiting": null,
              "failure": null,
              "confirmed_lsn": "0/1A2B3C8",
              "acknowledged_lsn": "0/1A2B400",
              "in_flight_records": 12,
              "kafka_reachable": true,
              "last_error": null
            }

            """)
        #expect(try ConnectorStatus(json: status.json) == status, "the document reads back")
    }

    @Test func waitingAndFailedCarryTheirCauseAndWhatToDo() throws {
        let waiting = ConnectorStatus(connector: "c", state: .waiting, since: Self.since, slot: "s",
                                      waiting: .init(cause: "postgres_unavailable", nextAttempt: Self.since.addingTimeInterval(0.5),
                                                     detail: "PostgreSQL cannot be reached"),
                                      kafkaReachable: false,
                                      lastError: .init(message: "connection refused \"quoted\"\nsecond line", at: Self.since))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(waiting.json.utf8)) as? [String: Any])
        let cause = try #require(object["waiting"] as? [String: Any])
        #expect(cause["cause"] as? String == "postgres_unavailable" && cause["next_attempt"] as? String == "2025-12-07T00:00:00.750000Z")
        #expect((object["last_error"] as? [String: Any])?["message"] as? String == "connection refused \"quoted\"\nsecond line")
        #expect(object["kafka_reachable"] as? Bool == false && object["confirmed_lsn"] is NSNull, "no position before the first")
        #expect(try ConnectorStatus(json: waiting.json) == waiting)

        let failed = ConnectorStatus(connector: "c", state: .failed, since: Self.since, slot: "s",
                                     failure: .init(error: "the outbox table is missing", action: "create it, then start again"))
        let failure = try #require((try JSONSerialization.jsonObject(with: Data(failed.json.utf8)) as? [String: Any])?["failure"] as? [String: Any])
        #expect(failure["error"] as? String == "the outbox table is missing" && failure["action"] as? String == "create it, then start again")
        #expect(try ConnectorStatus(json: failed.json).state == .failed)
    }

    @Test func aDocumentThatIsNotAStatusIsRefused() {
        #expect(throws: (any Error).self) { try ConnectorStatus(json: #"{"state": "PAUSED"}"#) }
        #expect(throws: (any Error).self) { try ConnectorStatus(json: "not json") }
    }
}
