/// A plain HTTP GET to 127.0.0.1 for tests; returns the status line and the body, or `nil` when nothing listens
/// (or nothing answers within 5 s, so that callers polling from async code never hold a pool thread forever).
public func httpGet(port: Int, path: String) async -> (status: String, body: String)? {
    await TestSocket.get(port: port, path: path)
}

/// An HTTP answer as a `Sendable` value, to carry it back from a thread of its own.
struct HTTPAnswer: Sendable {
    var status: String
    var body: String
}
