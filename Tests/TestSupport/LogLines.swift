import Synchronization

/// Collects log lines written from any thread, for tests that assert on what was logged.
public final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    /// Creates an empty collector.
    public init() {}

    /// Records one line.
    public func append(_ line: String) { lines.withLock { $0.append(line) } }

    /// Every line so far.
    public var all: [String] { lines.withLock { $0 } }

    /// Whether some line contains `text`.
    public func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }
}
