@testable import Observability
import Testing

@Suite struct HTTPRequestHeadTests {
    func parse(_ text: String, limit: Int = 8192) -> HTTPRequestHead.Parse {
        HTTPRequestHead.parse(Array(text.utf8), limit: limit)
    }

    @Test func completeHeadsWithCRLFOrLF() {
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n") == .complete(.init(method: "GET", path: "/metrics", version: "HTTP/1.1")))
        #expect(parse("GET /healthz?x=1 HTTP/1.0\n\n") == .complete(.init(method: "GET", path: "/healthz", version: "HTTP/1.0")))
    }

    @Test func everyPrefixOfAValidHeadIsIncomplete() {
        let head = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"
        for length in 0..<head.utf8.count {
            #expect(HTTPRequestHead.parse(Array(head.utf8.prefix(length)), limit: 8192) == .incomplete, "prefix \(length)")
        }
    }

    @Test func sizeLimit() {
        let head = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 100) + "\r\n\r\n"
        #expect(parse(head, limit: head.utf8.count) != .tooLarge)
        #expect(parse(head, limit: head.utf8.count - 1) == .tooLarge)
        #expect(parse(String(repeating: "a", count: 101), limit: 100) != .incomplete)
        #expect(parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200), limit: 100) == .tooLarge)
    }

    @Test(arguments: ["\u{16}\u{3}\u{1}", "get / HTTP/1.1\r\n\r\n", "GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET x HTTP/1.1\r\n\r\n",
                      "GET / HTTP/2\r\n\r\n", "GET / HTTP/1.1\r\nno colon\r\n\r\n", "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
                      "GET /\u{7F} HTTP/1.1\r\n\r\n", "BREW /pot HTCPCP/1.0\r\n\r\n", "GETTING_TO_THE_POINT_NOW / HTTP/1.1"])
    func malformed(text: String) {
        guard case .malformed = parse(text) else {
            Issue.record("\(text.debugDescription) was not rejected: \(parse(text))")
            return
        }
    }

    @Test func answers() {
        func status(_ text: String, healthy: Bool = true) -> String? {
            HTTPResponse.answer(parse(text), limit: 8192, metrics: { "m 1\n" }, healthy: { healthy })?.status
        }
        #expect(status("GET /metrics HTTP/1.1\r\n\r\n") == "200 OK")
        #expect(status("GET /healthz HTTP/1.1\r\n\r\n", healthy: false) == "503 Service Unavailable")
        #expect(status("DELETE /metrics HTTP/1.1\r\n\r\n") == "405 Method Not Allowed")
        #expect(status("GET /metrics HTTP/1.1\r\n") == nil)
        let bytes = HTTPResponse.answer(parse("GET /metrics HTTP/1.1\r\n\r\n"), limit: 8192, metrics: { "m 1\n" }, healthy: { true })?.bytes ?? []
        #expect(String(decoding: bytes, as: UTF8.self) == "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nm 1\n")
    }
}
