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

    /// Issue 19: a missing output directory was reported as a missing executable (posix_spawn's one errno).
    @Test func aChildThatCannotStartNamesThePathThatFailed() throws {
        let missingDirectory = NSTemporaryDirectory() + "no-such-directory-\(UUID().uuidString)"
        do {
            _ = try ChildProcess("/bin/true", [], outputPath: missingDirectory + "/child.log")
            Issue.record("started with an output file in a missing directory")
        } catch {
            let message = String(describing: error)
            #expect(message.contains("output file \(missingDirectory)/child.log"), "\(message)")
        }
        do {
            _ = try ChildProcess(missingDirectory + "/tool", [], outputPath: NSTemporaryDirectory() + "unused-\(UUID().uuidString).log")
            Issue.record("started a missing executable")
        } catch {
            let message = String(describing: error)
            #expect(message.contains("the executable") && message.contains("No such file"), "\(message)")
        }
    }

    @Test func aBrokerGoingDownNeverMeetsAChildBeingSpawned() async throws {
        // A child being spawned holds a copy of the broker's listener until it execs; a broker going down at that
        // moment cannot bind its port again and librdkafka aborts the process (3 of 9 clean-clone runs of the
        // suite did). `MockRebindProbe` takes a broker down and up while spawning children without pause, in a
        // process of its own, so an abort fails this test only.
        let output = NSTemporaryDirectory() + "mock-rebind-\(getpid())-\(UUID().uuidString).log"
        defer { unlink(output) }
        let probe = try ChildProcess(ChildProcess.productsDirectory + "/MockRebindProbe", ["100"], outputPath: output)
        let status = await probe.exitStatus(timeout: .seconds(180))
        #expect(status == 0, "exit status \(status): \(probe.output)")
        // "N rounds down and up, M children spawned meanwhile", with N and M at least 100.
        let counts = probe.output.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        #expect(counts.count == 2 && counts.allSatisfy { $0 >= 100 }, "\(probe.output)")
    }
}
