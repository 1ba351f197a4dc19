import Foundation
@testable import Observability
import TestSupport
import Testing

/// The `/metrics` server in a child process (`ObservabilityProbe serve`), against clients that misbehave. The
/// child must outlive them all: at the end SIGTERM makes it exit 0, where a SIGPIPE would have made it 141.
@Suite struct MetricsServerTests {
    struct Probe {
        let child: ChildProcess
        let port: Int

        /// Starts a server; `samples` sets the size of /metrics (about 70 bytes each).
        init(listen: String = "127.0.0.1:0", samples: Int = 10, readTimeoutMilliseconds: Int = 5_000, maxConnections: Int = 64) async throws {
            let output = NSTemporaryDirectory() + "tailgate-probe-\(getpid())-serve-\(UUID().uuidString).log"
            child = try ChildProcess(ChildProcess.productsDirectory + "/ObservabilityProbe",
                                     ["serve", listen, "\(samples)", "\(readTimeoutMilliseconds)", "\(maxConnections)"], outputPath: output)
            let child = child
            let line = try #require(await child.waitForLine { $0.hasPrefix("listening port=") || $0.hasPrefix("error") }, "\(child.output)")
            port = try #require(Int(line.dropFirst("listening port=".count)), "\(child.output)")
        }

        /// SIGTERM; the server must still be alive to exit 0 through its own handler.
        func stop() async {
            #expect(!child.hasExited, "the server died: \(child.output)")
            child.signal(SIGTERM)
            let status = await child.exitStatus(timeout: .seconds(20))
            #expect(status == 0, "exit \(status) (141 = killed by SIGPIPE): \(child.output)")
        }
    }

    /// Resets (SO_LINGER 0) before sending, right after sending, and in the middle of a 350 kB response.
    @Test func clientsThatResetNeverKillTheProcess() async throws {
        let probe = try await Probe(samples: 5_000)
        for round in 0..<20 {
            guard let beforeSending = TestSocket(port: probe.port) else {
                Issue.record("round \(round): refused; the server exited \(await probe.child.exitStatus(timeout: .seconds(5))) (141 = SIGPIPE)")
                return
            }
            beforeSending.reset()
            let afterSending = try #require(TestSocket(port: probe.port))
            afterSending.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            afterSending.reset()
            // A deadline, not a measurement: the probe renders 350 kB per request, and a full parallel run on two
            // busy cores has kept it from answering within 5 s.
            let midResponse = try #require(TestSocket(port: probe.port, timeout: .seconds(30)))
            midResponse.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await midResponse.read(upTo: 1000).count > 0)
            midResponse.reset()
        }
        #expect(await TestSocket.get(port: probe.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        let metrics = try #require(await TestSocket.get(port: probe.port, path: "/metrics"))
        #expect(metrics.body.hasSuffix("probe_samples{id=\"4999\",text=\"quote \\\" backslash \\\\ newline \\n end\"} 4999\n"))
        await probe.stop()
    }

    @Test func partialRequestsTimeOutWith408AndNeverHoldUpAScrape() async throws {
        let probe = try await Probe(readTimeoutMilliseconds: 1_000)
        let partial = try (0..<10).map { _ in try #require(TestSocket(port: probe.port)) }
        for socket in partial { socket.send("GET /metr") }
        let silent = try #require(TestSocket(port: probe.port))
        #expect(await TestSocket.get(port: probe.port, path: "/healthz")?.status == "HTTP/1.0 200 OK", "a scrape is answered while 10 requests hang")
        for socket in partial {
            #expect(await socket.readToEnd()?.hasPrefix("HTTP/1.0 408 Request Timeout") == true)
        }
        #expect(await silent.readToEnd() == "", "a connection that sent nothing is closed without an answer")
        await probe.stop()
    }

    static let hostileRequests: [String: (request: String, status: String)] = [
        "20 kB header": ("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n", "HTTP/1.0 413 Payload Too Large"),
        "9 kB without a newline": (String(repeating: "A", count: 9_000), "HTTP/1.0 413 Payload Too Large"),
        "TLS handshake": ("\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}", "HTTP/1.0 400 Bad Request"),
        "HTTP/0.9": ("GET /metrics\r\n\r\n", "HTTP/1.0 400 Bad Request"),
        "header without colon": ("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.0 400 Bad Request"),
        "lowercase method": ("get /metrics HTTP/1.1\r\n\r\n", "HTTP/1.0 400 Bad Request"),
        "POST": ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "HTTP/1.0 405 Method Not Allowed"),
        "HEAD": ("HEAD /metrics HTTP/1.1\r\n\r\n", "HTTP/1.0 405 Method Not Allowed"),
        "unknown path": ("GET /nothing HTTP/1.1\r\n\r\n", "HTTP/1.0 404 Not Found"),
        "query and bare LF": ("GET /metrics?debug=1 HTTP/1.0\n\n", "HTTP/1.0 200 OK"),
    ]

    @Test(arguments: hostileRequests.keys.sorted())
    func oversizedAndMalformedRequestsAreAnswered(name: String) async throws {
        let (request, status) = try #require(Self.hostileRequests[name])
        let probe = try await Probe()
        let socket = try #require(TestSocket(port: probe.port))
        socket.send(request)
        let response = await socket.readToEnd()
        #expect(response?.hasPrefix(status + "\r\n") == true, "\(name): \(response?.prefix(200) ?? "no response")")
        #expect(await TestSocket.get(port: probe.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        await probe.stop()
    }

    /// 25 clients trickle a request that never ends and 25 connect and say nothing, all within a 60 s read
    /// timeout; a one-client-at-a-time server would make the scrape wait for them (the old one: 2 s each).
    @Test func fiftySlowClientsDoNotHoldUpAScrape() async throws {
        let probe = try await Probe(samples: 100, readTimeoutMilliseconds: 60_000)
        var slow: [TestSocket] = []
        for index in 0..<50 {
            let socket = try #require(TestSocket(port: probe.port))
            if index.isMultiple(of: 2) { socket.send("GET /metrics HTTP/1.1\r\nX-Slow: ") }
            slow.append(socket)
        }
        for (index, socket) in slow.enumerated() where index.isMultiple(of: 2) { socket.send("a") }
        let scrape = try #require(await TestSocket.get(port: probe.port, path: "/metrics"), "the scrape got no answer within 5 s")
        #expect(scrape.status == "HTTP/1.0 200 OK")
        #expect(scrape.body.components(separatedBy: "\n").count == 103)
        #expect(await TestSocket.get(port: probe.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        withExtendedLifetime(slow) {}
        await probe.stop()
    }

    /// Past `maxConnections`, the oldest client still sending its request makes room for the new one.
    @Test func aFullServerDropsItsOldestSlowClientForANewOne() async throws {
        let probe = try await Probe(readTimeoutMilliseconds: 60_000, maxConnections: 8)
        let idle = try (0..<20).map { _ in try #require(TestSocket(port: probe.port)) }
        for socket in idle { socket.send("G") }
        #expect(await TestSocket.get(port: probe.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        #expect(await idle[0].waitForClose(), "the oldest idle client was closed to make room")
        #expect(!(await idle[19].waitForClose()), "the newest is still waiting within its read timeout")
        await probe.stop()
    }

    @Test func listensOnIPv6LoopbackAndOnEveryInterface() async throws {
        let loopback = try await Probe(listen: "[::1]:0")
        #expect(await TestSocket.get(host: "::1", port: loopback.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        await loopback.stop()

        let everywhere = try await Probe(listen: "[::]:0")
        #expect(await TestSocket.get(host: "::1", port: everywhere.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        #expect(await TestSocket.get(host: "127.0.0.1", port: everywhere.port, path: "/healthz")?.status == "HTTP/1.0 200 OK", "[::] is dual-stack")
        await everywhere.stop()

        let localhost = try await Probe(listen: "localhost:0")
        #expect(await TestSocket.get(host: "127.0.0.1", port: localhost.port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        await localhost.stop()
    }

    @Test func bindFailuresNameTheSettingAndTheFix() throws {
        let first = try MetricsServer(listen: "127.0.0.1:0", metrics: { "" }, healthy: { true })
        defer { first.stop() }
        #expect {
            try MetricsServer(listen: "127.0.0.1:\(first.port)", metrics: { "" }, healthy: { true })
        } throws: { error in
            let error = error as? MetricsServerError
            return error?.code == .cannotListen && error?.message.hasPrefix("metrics.listen: cannot listen on 127.0.0.1:\(first.port)") == true
                && error?.message.contains("choose another port in metrics.listen") == true
        }
        #expect {
            try MetricsServer(listen: "192.0.2.1:0", setting: "$.metrics.listen", metrics: { "" }, healthy: { true })
        } throws: { error in
            (error as? MetricsServerError)?.message.contains("$.metrics.listen: cannot listen on 192.0.2.1:0 for /metrics") == true
        }
    }

    /// In-process: after `stop()` the port is free again. (Other tests spawn children in parallel, and a child
    /// between fork and exec briefly holds a copy of every descriptor, the listener included; hence `eventually`.)
    @Test func stopFreesThePort() async throws {
        let server = try MetricsServer(listen: "127.0.0.1:0", metrics: { "m 1\n" }, healthy: { false })
        #expect(await TestSocket.get(port: server.port, path: "/healthz")?.status == "HTTP/1.0 503 Service Unavailable")
        #expect(await TestSocket.get(port: server.port, path: "/metrics")?.body == "m 1\n")
        let port = server.port
        server.stop()
        #expect(await eventually(timeout: .seconds(5)) {
            guard let again = try? MetricsServer(listen: "127.0.0.1:\(port)", metrics: { "" }, healthy: { true }) else { return false }
            again.stop()
            return true
        }, "port \(port) can be bound again")
    }
}
