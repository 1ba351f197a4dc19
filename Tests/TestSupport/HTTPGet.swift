/// A plain HTTP GET to 127.0.0.1 for tests; returns the status line and the body, or `nil` when nothing listens
/// (or nothing answers within 5 s, so that callers polling from async code never hold a pool thread forever).
public func httpGet(port: Int, path: String) -> (status: String, body: String)? {
    TestSocket.get(port: port, path: path)
}
