import Foundation
import RDKafka
import TestSupport
import Testing

/// `tailgate dev-kafka` as a user runs it: its own process, bootstrap servers on the first line, faults on stdin.
@Suite struct DevKafkaCommandTests {
    @Test func servesKafkaTakesFaultCommandsAndStopsOnSIGTERM() async throws {
        let log = NSTemporaryDirectory() + "dev-kafka-\(getpid())-\(UUID().uuidString).log"
        defer { unlink(log) }
        let devKafka = try ChildProcess(ChildProcess.productsDirectory + "/tailgate",
                                        ["dev-kafka", "--brokers", "1", "--partitions", "2", "--topics", "alpha"],
                                        outputPath: log, withInput: true)
        let bootstrap = try #require(await devKafka.waitForLine { $0.hasPrefix("127.0.0.1:") }, "no bootstrap line: \(devKafka.output)")
        #expect(devKafka.outputLines.first == bootstrap)
        #expect(devKafka.output.contains("IN-MEMORY"))

        let deliveries = DeliveryLog()
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": bootstrap, "reconnect.backoff.max.ms": "200"]),
                                         log: KafkaTestHelpers.quiet) { deliveries.record($0) }
        try await producer.send(KafkaRecord(topic: "alpha", key: [1], value: [1]), token: 1)
        #expect(await producer.flush(timeout: .seconds(30)) == 0)
        #expect(deliveries.all.map(\.partition).allSatisfy { (0..<2).contains($0) })

        devKafka.send("down 1")
        #expect(await devKafka.waitForLine { $0 == "ok down 1" } != nil)
        try await producer.send(KafkaRecord(topic: "alpha", key: [2], value: [2]), token: 2)
        try await Task.sleep(for: .seconds(2))
        #expect(deliveries.count == 1, "nothing is acknowledged while the only broker is down")
        devKafka.send("up 1")
        #expect(await devKafka.waitForLine { $0 == "ok up 1" } != nil)
        #expect(await producer.flush(timeout: .seconds(30)) == 0)
        #expect(deliveries.count == 2 && deliveries.all.allSatisfy { $0.isDelivered })

        devKafka.send("error Nope 1 1")
        #expect(await devKafka.waitForLine { $0.hasPrefix("error: unknown API 'Nope'") } != nil)
        await producer.close(timeout: .seconds(5))
        devKafka.signal(SIGTERM)
        #expect(await devKafka.exitStatus() == 0)
        #expect(devKafka.output.contains("stopped"))
    }
}
