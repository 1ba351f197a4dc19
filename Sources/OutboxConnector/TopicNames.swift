import Synchronization

/// The topic names an ``OutboxRouter`` derived from the topic column's bytes, each checked once.
///
/// A busy outbox names a handful of topics millions of times; building the name, applying the template and
/// checking it against Kafka's rules and `allowedTopics` per row was a measurable share of the routing cost. The
/// cache is bounded: past ``capacity`` distinct values it starts again (a column with ever-new values still works,
/// it only gains nothing).
final class TopicNames: Sendable {
    /// Why a topic column's value does not give a topic a record may go to.
    struct Problem: Error, Hashable {
        /// The sentence for the dead-letter header and the stop message.
        let reason: String
    }

    static let capacity = 1024
    private let known = Mutex<[[UInt8]: Result<String, Problem>]>([:])

    /// The topic for a topic column holding `value` (UTF-8), or why there is none.
    func topic(for value: [UInt8], configuration: ConnectorConfiguration) -> Result<String, Problem> {
        if let verdict = known.withLock({ $0[value] }) { return verdict }
        let verdict = Self.derive(String(decoding: value, as: UTF8.self), configuration: configuration)
        known.withLock { known in
            if known.count >= Self.capacity { known.removeAll(keepingCapacity: true) }
            known[value] = verdict
        }
        return verdict
    }

    private static func derive(_ value: String, configuration: ConnectorConfiguration) -> Result<String, Problem> {
        var topic = value
        if case .template(_, let template) = configuration.topic {
            topic = template.replacingOccurrences(of: "${value}", with: value)
        }
        guard JSONReader.check(topic, .topic) == nil else { return .failure(Problem(reason: "'\(topic)' is not a valid Kafka topic name")) }
        if let allowed = configuration.allowedTopics, !allowed.contains(topic) {
            return .failure(Problem(reason: "topic '\(topic)' is not in allowedTopics"))
        }
        return .success(topic)
    }
}
