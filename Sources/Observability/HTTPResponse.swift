/// The `/metrics` server's answers, decided without I/O from what was received.
struct HTTPResponse: Sendable, Hashable {
    /// `200 OK`, `404 Not Found`, …
    var status: String
    var contentType = "text/plain; charset=utf-8"
    var extraHeaders: [String] = []
    var body: String

    /// The bytes to send: an HTTP/1.0 response that closes the connection.
    var bytes: [UInt8] {
        var head = "HTTP/1.0 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n"
        for header in extraHeaders { head += header + "\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + Array(body.utf8)
    }

    /// The answer to a parsed request, or `nil` while more bytes are needed.
    ///
    /// - Parameters:
    ///   - parse: What the received bytes amount to.
    ///   - limit: The request size limit, for the 413 message.
    ///   - metrics: Renders `/metrics`; called only for `GET /metrics`.
    ///   - healthy: Decides `/healthz`; called only for `GET /healthz`.
    ///   - status: Renders `/status` (JSON); called only for `GET /status`; `nil`: not served.
    static func answer(_ parse: HTTPRequestHead.Parse, limit: Int, metrics: () -> String, healthy: () -> Bool,
                       status: (() -> String)? = nil) -> HTTPResponse? {
        switch parse {
        case .incomplete:
            return nil
        case .tooLarge:
            return HTTPResponse(status: "413 Payload Too Large", body: "request head larger than \(limit) bytes\n")
        case .malformed(let reason):
            return HTTPResponse(status: "400 Bad Request", body: "bad request: \(reason)\n")
        case .complete(let head) where head.method != "GET":
            return HTTPResponse(status: "405 Method Not Allowed", extraHeaders: ["Allow: GET"], body: "GET only\n")
        case .complete(let head):
            switch head.path {
            case "/metrics":
                return HTTPResponse(status: "200 OK", contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
            case "/healthz":
                return healthy() ? HTTPResponse(status: "200 OK", body: "ok\n") : HTTPResponse(status: "503 Service Unavailable", body: "unhealthy\n")
            case "/status" where status != nil:
                return HTTPResponse(status: "200 OK", contentType: "application/json", body: status?() ?? "")
            default:
                return HTTPResponse(status: "404 Not Found", body: status == nil ? "try /metrics or /healthz\n" : "try /metrics, /healthz or /status\n")
            }
        }
    }

    /// The answer to a client whose request did not arrive within the read timeout.
    static let timedOut = HTTPResponse(status: "408 Request Timeout", body: "the request did not arrive in time\n")
}
