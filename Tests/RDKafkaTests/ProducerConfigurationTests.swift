import RDKafka
import Testing

@Suite struct ProducerConfigurationTests {
    @Test func guaranteesAreAddedAndDefaultsCanBeChanged() throws {
        let resolved = try ProducerConfiguration(properties: ["bootstrap.servers": "x:9092", "linger.ms": "20", "acks": "-1"]).resolved()
        #expect(resolved["enable.idempotence"] == "true")
        #expect(resolved["acks"] == "all")
        #expect(resolved["enable.gapless.guarantee"] == "true")
        #expect(resolved["message.timeout.ms"] == "0")
        #expect(resolved["partitioner"] == "murmur2_random")
        #expect(resolved["linger.ms"] == "20")
        #expect(resolved["bootstrap.servers"] == "x:9092")
    }

    @Test func weakeningAGuaranteeIsAnErrorNamingEachProperty() {
        let error = #expect(throws: KafkaError.self) {
            try ProducerConfiguration(properties: ["acks": "1", "enable.idempotence": "false", "message.timeout.ms": "30000"]).resolved()
        }
        #expect(error?.kind == .configuration)
        for property in ["'acks' is '1'", "'enable.idempotence' is 'false'", "'message.timeout.ms' is '30000'"] {
            #expect(error?.message.contains(property) == true, "missing \(property) in \(error?.message ?? "")")
        }
        #expect(throws: Never.self) {
            try ProducerConfiguration(properties: ["acks": "1"], enforcesDeliveryGuarantees: false).resolved()
        }
    }

    @Test func unknownAndInvalidPropertiesAreReportedByNameBeforeConnecting() {
        let unknown = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": "127.0.0.1:1", "no.such.property": "1"]),
                                  log: KafkaTestHelpers.quiet) { _ in }
        }
        #expect(unknown?.kind == .configuration)
        #expect(unknown?.message.contains("no.such.property") == true)
        let invalid = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(properties: ["bootstrap.servers": "127.0.0.1:1", "group.id": "g", "session.timeout.ms": "banana"],
                                  log: KafkaTestHelpers.quiet)
        }
        #expect(invalid?.message.contains("session.timeout.ms") == true)
    }
}
