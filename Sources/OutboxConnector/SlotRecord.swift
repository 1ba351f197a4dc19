import Foundation

/// Remembers, on local disk, that this connector created (or has used) its slot on a given cluster.
///
/// A slot that disappears after it has been used must stop the connector loudly: silently creating a new one would
/// start after the events committed in between, losing them. PostgreSQL keeps no trace of a dropped slot, so the
/// memory lives in a small file (`stateDirectory/NAME.slot`).
struct SlotRecord {
    let path: String

    init(directory: String, connector: String) {
        path = (directory as NSString).appendingPathComponent("\(connector).slot")
    }

    /// Whether `slot` on the cluster `systemID` was used before.
    func contains(systemID: String, slot: String) -> Bool {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0 == "\(systemID) \(slot)" }
    }

    /// Records that `slot` on `systemID` is in use.
    func remember(systemID: String, slot: String) throws {
        guard !contains(systemID: systemID, slot: slot) else { return }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        try (existing + "\(systemID) \(slot)\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
}
