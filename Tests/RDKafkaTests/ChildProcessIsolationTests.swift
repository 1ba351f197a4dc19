import Foundation
import RDKafka
import TestSupport
import Testing

/// Children the tests start (PostgreSQL, the connector, dev-kafka) must not hold the test process's sockets: a
/// mock broker's accepted connections are not close-on-exec, and a child holding one keeps a "down" broker's
/// connections alive and its port busy, so librdkafka cannot re-bind it and aborts.
@Suite struct ChildProcessIsolationTests {
    @Test func aChildInheritsNoDescriptorBeyondStandardStreams() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": cluster.bootstrapServers]),
                                         log: KafkaTestHelpers.quiet) { _ in }
        try await producer.send(KafkaRecord(topic: "isolation", key: [1], value: [1]), token: 1)
        #expect(await producer.flush(timeout: .seconds(30)) == 0, "the broker accepted a connection")
        let ours = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap { Int($0) }
        #expect(ours.count > 10, "this process holds sockets and pipes a child could inherit")

        let output = NSTemporaryDirectory() + "fds-\(getpid())-\(UUID().uuidString).txt"
        defer { unlink(output) }
        let child = try ChildProcess("/bin/ls", ["/proc/self/fd"], outputPath: output)
        #expect(await child.exitStatus(timeout: .seconds(30)) == 0)
        let inherited = Set(child.outputLines.compactMap { Int($0) })
        // 0, 1, 2, and the directory `ls` itself opened to list.
        #expect(inherited.isSubset(of: [0, 1, 2, 3]), "the child inherited \(inherited.sorted())")
        await producer.close(timeout: .seconds(5))
    }
}
