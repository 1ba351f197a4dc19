import Foundation

/// Runs Prometheus's own checker, `promtool check metrics`, on an exposition; returns its exit status (0: valid
/// and lint-clean) and its complaints.
///
/// - Throws: ``TestPostgresError`` when promtool is not installed (Debian package `prometheus`, which
///   `scripts/lib/setup.sh` installs).
public func promtoolCheckMetrics(_ exposition: String) async throws -> (status: Int32, output: String) {
    guard let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestPostgresError(message: "promtool not found; install it: apt-get install -y --no-install-recommends prometheus (see scripts/lib/setup.sh)")
    }
    let base = NSTemporaryDirectory() + "tailgate-promtool-\(getpid())-\(UUID().uuidString)"
    try exposition.write(toFile: base + ".prom", atomically: true, encoding: .utf8)
    defer { unlink(base + ".prom"); unlink(base + ".log") }
    let child = try ChildProcess("/bin/sh", ["-c", "exec \(promtool) check metrics < '\(base).prom'"], outputPath: base + ".log")
    let status = await child.exitStatus(timeout: .seconds(30))
    return (status, child.output)
}
