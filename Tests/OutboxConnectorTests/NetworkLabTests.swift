import Foundation
import LibPQ
import RDKafka
import TestSupport
import Testing

/// The network lab behind the partition tests does what they rely on: hosts reach each other through the router,
/// a cut drops packets without an answer (a connect times out instead of being refused), a heal restores the path,
/// loopback-only mock brokers are reachable from an exposed host and cut with it, and nothing is left behind.
@Suite(.enabled(if: NetworkLab.unavailableReason == nil, Comment(rawValue: NetworkLab.unavailableReason ?? "")))
struct NetworkLabTests {
    @Test func aCutIsSilentAndAHealRestoresThePath() async throws {
        let lab = try await NetworkLab(hosts: ["pg", "app"])
        defer { lab.close() }
        let postgres = try await lab.startPostgres(in: "pg")
        let conninfo = lab.conninfo(of: postgres, in: "pg", database: "postgres") + " connect_timeout=3"
        let connect: @Sendable () async -> (ok: Bool, seconds: Double, error: String) = {
            let started = ContinuousClock.now
            // nil: connected.
            let failure: String?
            do {
                failure = try await lab.perform(in: "app") { () -> String? in
                    do {
                        let connection = try Connection.connectBlocking(conninfo)
                        connection.closeBlocking()
                        return nil
                    } catch {
                        return "\(error)"
                    }
                }
            } catch {
                failure = "\(error)"
            }
            let elapsed = (ContinuousClock.now - started).components
            return (failure == nil, Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18, failure ?? "")
        }
        #expect(await connect().ok, "app reaches pg through the router")

        try await lab.cut("app", "pg")
        let during = await connect()
        #expect(!during.ok)
        #expect(during.seconds >= 2.5, "a cut answers nothing, so only connect_timeout ends the attempt (took \(during.seconds) s: \(during.error))")
        #expect(!during.error.contains("refused"), "\(during.error)")
        // This process's own path (the Unix socket) never crosses the router.
        let local = try await Connection.connect(postgres.conninfo())
        #expect(try await local.query("SELECT 1 AS one").first?.int("one") == 1)
        await local.close()

        try await lab.heal("app", "pg")
        #expect(await connect().ok, "the heal restores the path")

        let namespaces = [lab.namespace("pg"), lab.namespace("app")]
        lab.close()
        let left = try ChildProcess.run(NetworkLab.ipTool, ["netns", "list"])
        #expect(namespaces.allSatisfy { !left.contains($0) }, "close() removes the namespaces: \(left)")
    }

    @Test func loopbackOnlyBrokersAreReachableFromAnExposedHostAndCutWithIt() async throws {
        let lab = try await NetworkLab(hosts: ["kafka", "app"])
        defer { lab.close() }
        // The mock cluster lives in this process, its listeners (127.0.0.1 only) in the kafka host.
        let cluster = try await lab.perform(in: "kafka") { try KafkaMockCluster(brokers: 1, log: mockClusterLog) }
        defer { cluster.close() }
        let port = try #require(cluster.bootstrapServers.split(separator: ":").last.flatMap { Int($0) })
        try await lab.exposeLoopback(ports: [port], of: "kafka", to: "app")
        let producer = try await lab.perform(in: "app") {
            try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": cluster.bootstrapServers, "reconnect.backoff.max.ms": "500"]),
                              log: { _ in }) { _ in }
        }
        try await producer.send(KafkaRecord(topic: "lab", key: [1], value: [1]), token: 1)
        #expect(await producer.flush(timeout: .seconds(30)) == 0, "app reaches the broker on the kafka host's loopback")

        try await lab.cut("app", "kafka")
        try await producer.send(KafkaRecord(topic: "lab", key: [2], value: [2]), token: 2)
        #expect(await producer.flush(timeout: .seconds(3)) == 1, "nothing crosses the cut")
        try await lab.heal("app", "kafka")
        #expect(await producer.flush(timeout: .seconds(60)) == 0, "the heal delivers what waited")
        await producer.close(timeout: .seconds(5))
    }
}
