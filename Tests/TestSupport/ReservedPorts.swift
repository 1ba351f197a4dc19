import Foundation
import RDKafka

/// Keeps a mock broker's port out of the kernel's automatic port choice while the broker is down: test support only,
/// used through ``RDKafka/KafkaMockCluster/takeBrokerDown(_:)`` and ``RDKafka/KafkaMockCluster/bringBrokerUp(_:)``.
///
/// librdkafka 2.0.2's mock, taking a broker down, closes its listener and binds a new socket to the same port at once
/// (kept for the way back up), and aborts the whole process if that bind fails (`rdkafka_mock.c:2100`). The main
/// cause of such failures, a child process being spawned at that moment, is closed by
/// `KafkaMockCluster.listenerGate`. What remains is the moment between the close and the bind: the port comes from
/// the ephemeral range, and an outgoing connection made then can take it as its local port. Listed in
/// `net.ipv4.ip_local_reserved_ports` before the broker goes down, a port is skipped by `connect()` and `bind(0)`
/// but can still be bound by name, which is what the broker does. Only with `TAILGATE_RESERVE_MOCK_PORTS=1` (set by
/// `scripts/test`, which restores the setting at exit) and as root: it changes a machine-wide setting, which is why it
/// lives here and never in a library.
public enum ReservedPorts {
    /// Whether reservations are made (`TAILGATE_RESERVE_MOCK_PORTS=1`, as root).
    public static let isEnabled = ProcessInfo.processInfo.environment["TAILGATE_RESERVE_MOCK_PORTS"] == "1" && getuid() == 0
    private static let path = "/proc/sys/net/ipv4/ip_local_reserved_ports"
    private static let lock = NSLock()

    /// Adds `port` to `ip_local_reserved_ports`.
    public static func reserve(_ port: Int) {
        change { entries in if !entries.contains(String(port)) { entries.append(String(port)) } }
    }

    /// Removes `port` from `ip_local_reserved_ports`.
    public static func release(_ port: Int) {
        change { entries in entries.removeAll { $0 == String(port) } }
    }

    private static func change(_ body: (inout [String]) -> Void) {
        guard isEnabled else { return }
        lock.lock()
        defer { lock.unlock() }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var entries = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
        body(&entries)
        try? (entries.joined(separator: ",") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    }
}

extension KafkaMockCluster {
    /// Takes broker `id` down with its port reserved until ``bringBrokerUp(_:)`` (see ``ReservedPorts``).
    ///
    /// - Throws: ``KafkaError``.
    public func takeBrokerDown(_ id: Int32) throws(KafkaError) {
        if let port = port(of: id) { ReservedPorts.reserve(port) }
        try setBrokerDown(id)
    }

    /// Brings broker `id` back up and releases its port's reservation.
    ///
    /// - Throws: ``KafkaError``.
    public func bringBrokerUp(_ id: Int32) throws(KafkaError) {
        try setBrokerUp(id)
        if let port = port(of: id) { ReservedPorts.release(port) }
    }

    /// The port broker `id` listens on (brokers are listed in id order in ``bootstrapServers``).
    private func port(of id: Int32) -> Int? {
        let servers = bootstrapServers.split(separator: ",")
        guard id >= 1, Int(id) <= servers.count else { return nil }
        return servers[Int(id) - 1].split(separator: ":").last.flatMap { Int($0) }
    }
}
