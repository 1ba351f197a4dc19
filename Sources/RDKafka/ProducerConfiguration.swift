/// A producer's librdkafka properties, with the delivery guarantees Tailgate depends on.
///
/// Users' properties pass through unchanged (TLS, SASL, compression, batching…), except that the guarantees in
/// ``guaranteedProperties`` cannot be weakened: a conflicting value is an error naming the property, not a silent
/// override.
public struct ProducerConfiguration: Sendable {
    /// The properties that keep every record, in order, until Kafka acknowledged it:
    /// an idempotent producer, acknowledgement by all in-sync replicas, no gap after a failed batch, and no
    /// local timeout (retriable errors retry forever inside librdkafka).
    public static let guaranteedProperties: [String: String] = [
        "enable.idempotence": "true",
        "acks": "all",
        "enable.gapless.guarantee": "true",
        "message.timeout.ms": "0",
    ]

    /// Defaults a user may change: the Java client's partitioner, so keys land on the same partitions.
    public static let defaultProperties: [String: String] = [
        "partitioner": "murmur2_random",
        "linger.ms": "5",
        // TCP_NODELAY, as the Java client always sets: with Nagle on, a second small request to a broker waits for
        // the first one's TCP acknowledgement, which the peer may delay by ~40 ms.
        "socket.nagle.disable": "true",
    ]

    /// The user's properties.
    public var properties: [String: String]
    /// Enforce ``guaranteedProperties``. Only benchmarks and tests of plain producers turn this off.
    public var enforcesDeliveryGuarantees: Bool

    /// Creates a configuration.
    public init(properties: [String: String], enforcesDeliveryGuarantees: Bool = true) {
        self.properties = properties
        self.enforcesDeliveryGuarantees = enforcesDeliveryGuarantees
    }

    /// The properties handed to librdkafka.
    ///
    /// - Throws: ``KafkaError`` of kind `configuration` for each property that would weaken a guarantee.
    public func resolved() throws(KafkaError) -> [String: String] {
        var resolved = Self.defaultProperties.merging(properties) { $1 }
        // `queue.buffering.max.ms` is linger.ms's alias: a user's value must not meet our default for the other name.
        if properties["queue.buffering.max.ms"] != nil && properties["linger.ms"] == nil { resolved["linger.ms"] = nil }
        guard enforcesDeliveryGuarantees else { return resolved }
        var conflicts: [String] = []
        for (key, required) in Self.guaranteedProperties.sorted(by: { $0.key < $1.key }) {
            if let given = properties[key], !Self.equivalent(key, given, required) {
                conflicts.append("property '\(key)' is '\(given)' but must be '\(required)' so that no event is lost or reordered; remove it")
            }
            resolved[key] = required
        }
        if !conflicts.isEmpty {
            throw KafkaError(kind: .configuration, codeName: "CONF_INVALID", message: conflicts.joined(separator: "; "))
        }
        return resolved
    }

    private static func equivalent(_ key: String, _ given: String, _ required: String) -> Bool {
        let value = given.lowercased()
        if key == "acks" { return value == "all" || value == "-1" }
        return value == required
    }
}
