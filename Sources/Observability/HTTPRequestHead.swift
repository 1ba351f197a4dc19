/// The request line of an HTTP/1.x request, parsed strictly from the bytes received so far; no I/O.
///
/// Only what the `/metrics` server needs: method, path (query dropped) and version. The head must end with an
/// empty line within the size limit; header lines must contain a colon.
struct HTTPRequestHead: Sendable, Hashable {
    /// `GET`, `POST`, …
    var method: String
    /// The path without its query string.
    var path: String
    /// `HTTP/1.0` or `HTTP/1.1`.
    var version: String

    /// What the bytes so far amount to.
    enum Parse: Sendable, Hashable {
        /// No end of head yet, nothing wrong so far.
        case incomplete
        /// A whole, well-formed head.
        case complete(HTTPRequestHead)
        /// The head is longer than the limit (or would be).
        case tooLarge
        /// Not an HTTP/1.x request head; the reason, for the 400 answer.
        case malformed(String)
    }

    /// Parses `bytes`, the start of a connection's input.
    ///
    /// - Parameters:
    ///   - bytes: Everything received so far.
    ///   - limit: The largest head accepted, in bytes, the final empty line included.
    static func parse(_ bytes: [UInt8], limit: Int) -> Parse {
        let lineFeed = UInt8(ascii: "\n")
        guard let firstLineEnd = bytes.firstIndex(of: lineFeed) else {
            if bytes.count > limit { return .tooLarge }
            // Reject what cannot become a request line early (a TLS handshake, binary junk).
            if let bad = bytes.first(where: { ($0 < 0x20 && $0 != UInt8(ascii: "\r")) || $0 > 0x7E }) {
                return .malformed("the request line holds byte 0x\(String(bad, radix: 16)); expected e.g. GET /metrics HTTP/1.1")
            }
            if let space = bytes.firstIndex(of: UInt8(ascii: " ")), !isMethod(bytes[..<space]) {
                return .malformed("'\(String(decoding: bytes[..<space], as: UTF8.self))' is not an HTTP method")
            }
            return .incomplete
        }
        var line = bytes[..<firstLineEnd]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        let head: HTTPRequestHead
        switch requestLine(line) {
        case .success(let parsed): head = parsed
        case .failure(let reason): return .malformed(reason.text)
        }
        // Header lines: up to an empty line; each must be `name: value`.
        var start = firstLineEnd + 1
        while true {
            guard let end = bytes[start...].firstIndex(of: lineFeed) else {
                return bytes.count > limit ? .tooLarge : .incomplete
            }
            var header = bytes[start..<end]
            if header.last == UInt8(ascii: "\r") { header = header.dropLast() }
            if header.isEmpty { return end + 1 > limit ? .tooLarge : .complete(head) }
            guard let colon = header.firstIndex(of: UInt8(ascii: ":")), colon > header.startIndex,
                  header.first != UInt8(ascii: " "), header.first != UInt8(ascii: "\t"),
                  !header.contains(where: { $0 < 0x20 && $0 != UInt8(ascii: "\t") }) else {
                return .malformed("header line '\(String(decoding: header.prefix(40), as: UTF8.self))' is not name: value")
            }
            start = end + 1
        }
    }

    private struct Reason: Error { let text: String }

    private static func requestLine(_ line: ArraySlice<UInt8>) -> Result<HTTPRequestHead, Reason> {
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            return .failure(Reason(text: "the request line is not METHOD PATH HTTP/1.x; expected e.g. GET /metrics HTTP/1.1"))
        }
        guard isMethod(parts[0]) else { return .failure(Reason(text: "'\(String(decoding: parts[0].prefix(20), as: UTF8.self))' is not an HTTP method")) }
        let target = parts[1]
        guard target.first == UInt8(ascii: "/"), target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            return .failure(Reason(text: "the request target is not a path starting with /"))
        }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.0" || version == "HTTP/1.1" else {
            return .failure(Reason(text: "'\(version.prefix(20))' is not HTTP/1.0 or HTTP/1.1"))
        }
        let path = target.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false)[0]
        return .success(HTTPRequestHead(method: String(decoding: parts[0], as: UTF8.self), path: String(decoding: path, as: UTF8.self),
                                        version: version))
    }

    private static func isMethod(_ token: ArraySlice<UInt8>) -> Bool {
        !token.isEmpty && token.count <= 16 && token.allSatisfy { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }
    }
}
