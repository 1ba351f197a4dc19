import Foundation
import RDKafka
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Nagle's algorithm is off on both ends of a Kafka connection: with it on, a second small request or response on
/// a connection waits for the first one's TCP acknowledgement, which the peer may delay by ~40 ms (measured: a
/// fifth of the events at 50 events/s took 44 ms instead of 2 ms).
@Suite struct SocketOptionTests {
    @Test func producerAndMockBrokerSocketsHaveTCPNoDelay() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        let brokerPort = try #require(cluster.bootstrapServers.split(separator: ":").last.flatMap { Int($0) })
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": cluster.bootstrapServers]),
                                         log: KafkaTestHelpers.quiet) { _ in }
        try await producer.send(KafkaRecord(topic: "nodelay", key: [1], value: [1]), token: 1)
        #expect(await producer.flush(timeout: .seconds(30)) == 0)

        // Both ends live in this process: the producer's sockets have the broker as peer, the mock's accepted ones
        // have it as local address.
        var clientEnds = 0, brokerEnds = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let descriptor = Int32(name), Self.isTCP(descriptor) else { continue }
            let local = Self.port(descriptor, peer: false), peer = Self.port(descriptor, peer: true)
            guard local == brokerPort || peer == brokerPort, peer != nil else { continue } // skip the listener
            if peer == brokerPort { clientEnds += 1 } else { brokerEnds += 1 }
            var flag: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &flag, &length)
            #expect(flag != 0, "descriptor \(descriptor) (local port \(local ?? 0), peer port \(peer ?? 0)) has Nagle on")
        }
        #expect(clientEnds > 0 && brokerEnds > 0, "found \(clientEnds) client and \(brokerEnds) broker sockets")
        await producer.close(timeout: .seconds(5))
    }

    /// A broker connection on a silently dropped network ends after 15 s of unacknowledged data instead of waiting
    /// for TCP's backed-off retransmissions (a Kafka cut healed after 31 s took 23 s to recover, 8 s with this).
    @Test func clientSocketsToBrokersHaveATCPUserTimeout() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        let brokerPort = try #require(cluster.bootstrapServers.split(separator: ":").last.flatMap { Int($0) })
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": cluster.bootstrapServers]),
                                         log: KafkaTestHelpers.quiet) { _ in }
        try await producer.send(KafkaRecord(topic: "usertimeout", key: [1], value: [1]), token: 1)
        #expect(await producer.flush(timeout: .seconds(30)) == 0)
        var clientEnds = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let descriptor = Int32(name), Self.isTCP(descriptor), Self.port(descriptor, peer: true) == brokerPort else { continue }
            clientEnds += 1
            var milliseconds: UInt32 = 0
            var length = socklen_t(MemoryLayout<UInt32>.size)
            getsockopt(descriptor, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &milliseconds, &length)
            #expect(milliseconds == 15_000, "descriptor \(descriptor) has TCP_USER_TIMEOUT \(milliseconds)")
        }
        #expect(clientEnds > 0)
        await producer.close(timeout: .seconds(5))
    }

    static func isTCP(_ descriptor: Int32) -> Bool {
        var type: Int32 = 0, family = sockaddr_in()
        var length = socklen_t(MemoryLayout<Int32>.size), addressLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
        let named = withUnsafeMutablePointer(to: &family) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &addressLength) == 0 }
        }
        return named && family.sin_family == sa_family_t(AF_INET)
    }

    static func port(_ descriptor: Int32, peer: Bool) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(descriptor, $0, &length) == 0 : getsockname(descriptor, $0, &length) == 0
            }
        }
        return ok ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }
}
