import Foundation
import OutboxConnector
import TestSupport
import Testing

/// `tailgate run`'s `/metrics` and `/healthz` against clients that misbehave, while it streams.
@Suite struct MetricsEndpointProcessTests {
    /// Resets before and after sending, 50 clients holding connections open with requests that never finish, and
    /// an oversized request: the connector keeps streaming, scrapes are answered meanwhile (and pass promtool),
    /// and SIGTERM still ends it with status 0 (a SIGPIPE kill is 141).
    @Test func hostileClientsNeitherKillNorStallTheConnector() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let port = try TestPostgres.freePort()
        let process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port), metricsPort: port)
        #expect(await eventually { await process.isStreaming }, "never streamed: \(process.child.output)")

        for round in 0..<20 {
            guard let beforeSending = TestSocket(port: port) else {
                Issue.record("round \(round): refused; tailgate exited \(await process.child.exitStatus(timeout: .seconds(5))): \(process.child.output)")
                return
            }
            beforeSending.reset()
            let afterSending = try #require(TestSocket(port: port))
            afterSending.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            afterSending.reset()
        }
        let oversized = try #require(TestSocket(port: port))
        oversized.send("GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
        #expect(await oversized.readToEnd()?.hasPrefix("HTTP/1.0 413") == true)

        var slow: [TestSocket] = []
        for index in 0..<50 {
            let socket = try #require(TestSocket(port: port))
            if index.isMultiple(of: 2) { socket.send("GET /metrics HTTP/1.1\r\nX-Slow: ") }
            slow.append(socket)
        }
        // The stream goes on while they hang: rows inserted now are delivered, and scrapes see it.
        try await fixture.load(transactions: 0..<10)
        #expect(await eventually { await process.delivered == 100 }, "the 100 records were not all delivered while 50 clients hang: \(process.child.output.suffix(1500))")
        let scrape = try #require(await TestSocket.get(port: port, path: "/metrics"), "no scrape answer within 5 s")
        #expect(scrape.status == "HTTP/1.0 200 OK")
        let (status, output) = try await promtoolCheckMetrics(scrape.body)
        #expect(status == 0, "\(output)\n\(scrape.body)")
        #expect(await TestSocket.get(port: port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        withExtendedLifetime(slow) {}

        #expect(!process.child.hasExited, "\(process.child.output)")
        process.child.signal(SIGTERM)
        let exit = await process.child.exitStatus()
        #expect(exit == 0, "exit \(exit) (141 = SIGPIPE): \(process.child.output)")
        #expect(process.child.output.contains("event=shutdown_requested"))
    }
}
