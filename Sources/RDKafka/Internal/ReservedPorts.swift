import Foundation

/// Keeps a mock broker's port out of the kernel's automatic port choice while the broker is down.
///
/// librdkafka 2.0.2's mock closes a down broker's listener and, when it comes back up, binds the same port again;
/// if anything took the port meanwhile it aborts the whole process (`rdkafka_mock.c`, "Failed to create mock broker
/// listener"). Its ports come from the ephemeral range, so any outgoing connection of the machine can take a freed
/// one as its local port, and a test suite that opens thousands of connections sometimes does. Listed in
/// `net.ipv4.ip_local_reserved_ports`, a port is skipped by `connect()` and `bind(0)` but can still be bound by
/// name, which is what the broker does. Only with `TAILGATE_RESERVE_MOCK_PORTS=1` (set by `scripts/test`) and as root:
/// it changes a machine-wide setting.
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
