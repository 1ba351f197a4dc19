import Foundation
@testable import OutboxConnector
import Testing

@Suite struct TopicNamesTests {
    func configuration(_ topic: String, allowed: [String]? = nil) throws -> ConnectorConfiguration {
        let allowedJSON = allowed.map { ", \"allowedTopics\": [\($0.map { "\"\($0)\"" }.joined(separator: ", "))]" } ?? ""
        return try ConnectorConfiguration.parse(Data("""
        {"name": "t", "postgres": {"conninfo": "host=x", "slot": "s", "publication": "p"},
         "outbox": {"table": "public.outbox", "topic": \(topic)\(allowedJSON)}, "kafka": {"bootstrap.servers": "k:9092"}}
        """.utf8))
    }

    /// A cached verdict is the one a fresh derivation gives, for accepted and refused values alike, and past the
    /// cache's capacity every value still gets its own verdict.
    @Test func verdictsAreTheDerivedOnesBeforeAndAfterCachingAndPastCapacity() throws {
        let names = TopicNames()
        let template = try configuration(#"{"column": "aggregate_type", "template": "outbox.${value}"}"#, allowed: nil)
        for _ in 0..<2 {
            #expect(try names.topic(for: Array("order".utf8), configuration: template).get() == "outbox.order")
            #expect(throws: TopicNames.Problem.self) { try names.topic(for: Array("bad name".utf8), configuration: template).get() }
        }
        let allowed = try configuration(#"{"column": "topic"}"#, allowed: ["orders"])
        let other = TopicNames()
        #expect(try other.topic(for: Array("orders".utf8), configuration: allowed).get() == "orders")
        #expect(throws: TopicNames.Problem(reason: "topic 'payments' is not in allowedTopics")) {
            try other.topic(for: Array("payments".utf8), configuration: allowed).get()
        }
        for index in 0..<(TopicNames.capacity * 3 / 2) {
            #expect(try names.topic(for: Array("t\(index)".utf8), configuration: template).get() == "outbox.t\(index)")
        }
        #expect(try names.topic(for: Array("order".utf8), configuration: template).get() == "outbox.order")
    }
}
