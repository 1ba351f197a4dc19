import Foundation

/// Keeps a mock broker's port out of the kernel's automatic port choice while the broker is down.
///
/// librdkafka 2.0.2's mock, taking a broker down, closes its listener and binds a new socket to the same port at once
/// (kept for the way back up), and aborts the whole process if that bind fails (`rdkafka_mock.c:2100`). The main
/// cause of such failures, a child process being spawned at that moment, is closed by
/// `KafkaMockCluster.listenerGate`. What remains is the moment between the close and the bind: the port comes from
/// the ephemeral range, and an outgoing connection made then can take it as its local port. Listed in
/// `net.ipv4.ip_local_reserved_ports` before the broker goes down, a port is skipped by `connect()` and `bind(0)`
/// but can still be bound by name, which is what the broker does. Only with `TAILGATE_RESERVE_MOCK_PORTS=1` (set by
/// `scripts/test`) and as root: it changes a machine-wide setting.
enum ReservedPorts {
    static let isEnabled = ProcessInfo.processInfo.environment["TAILGATE_RESERVE_MOCK_PORTS"] == "1" && getuid() == 0
    private static let path = "/proc/sys/net/ipv4/ip_local_reserved_ports"
    private static let lock = NSLock()

    static func reserve(_ port: Int) {
        change { entries in if !entries.contains(String(port)) { entries.append(String(port)) } }
    }

    static func release(_ port: Int) {
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
