// A test fixture for ObservabilityTests, run as a child process:
// - `signals MODE` creates ShutdownSignals in the context MODE names and exits 0 after printing
//   `stopping signal=NAME` once a signal stopped its "service".
// - `serve LISTEN [SAMPLES [READ_TIMEOUT_MS [MAX_CONNECTIONS]]]` runs a MetricsServer whose /metrics has SAMPLES
//   samples, prints `listening port=N`, and exits 0 on SIGTERM: any other exit status (141 = SIGPIPE) means a
//   client killed it.
import Dispatch
import Foundation
import Observability
import Synchronization

/// A stand-in for a service's `run()`: returns once `stop` is called.
final class Service: Sendable {
    private let state = Mutex<(stopped: ShutdownSignal?, waiter: CheckedContinuation<ShutdownSignal, Never>?)>((nil, nil))

    func stop(_ signal: ShutdownSignal) {
        let waiter = state.withLock { state -> CheckedContinuation<ShutdownSignal, Never>? in
            guard state.stopped == nil else { return nil }
            state.stopped = signal
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: signal)
    }

    func run() async -> ShutdownSignal {
        await withCheckedContinuation { continuation in
            let stopped = state.withLock { state -> ShutdownSignal? in
                if state.stopped == nil { state.waiter = continuation }
                return state.stopped
            }
            if let stopped { continuation.resume(returning: stopped) }
        }
    }
}

actor Owner {
    var signals: ShutdownSignals?
    func start(_ service: Service) { signals = ShutdownSignals { service.stop($0) } }
}

func line(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Serves /metrics until SIGTERM.
func serve(_ arguments: [String]) async -> Never {
    let samples = arguments.count > 1 ? Int(arguments[1]) ?? 10 : 10
    let readTimeout = Duration.milliseconds(arguments.count > 2 ? Int(arguments[2]) ?? 5_000 : 5_000)
    let maxConnections = arguments.count > 3 ? Int(arguments[3]) ?? 64 : 64
    let signals = ShutdownSignals()
    let server: MetricsServer
    do {
        server = try MetricsServer(listen: arguments[0], limits: .init(maxConnections: maxConnections, readTimeout: readTimeout), metrics: {
            var text = PrometheusText()
            text.family("probe_samples", .gauge, help: "Samples with hostile label values.")
            for index in 0..<samples {
                text.sample("probe_samples", labels: [("id", "\(index)"), ("text", "quote \" backslash \\ newline \n end")], index)
            }
            return text.output
        }, healthy: { true })
    } catch {
        line("error: \(error)")
        exit(1)
    }
    line("listening port=\(server.port)")
    let service = Service()
    signals.onSignal { service.stop($0) }
    _ = await service.run()
    server.stop()
    line("stopped")
    exit(0)
}

/// The main thread blocks on a semaphore: a handler on the main queue would never run.
func blockedMain() -> Never {
    let semaphore = DispatchSemaphore(value: 0)
    let signals = ShutdownSignals { signal in
        line("stopping signal=\(signal.name)")
        semaphore.signal()
    }
    line("ready")
    semaphore.wait()
    withExtendedLifetime(signals) {}
    exit(0)
}

let arguments = CommandLine.arguments.dropFirst()
let service = Service()
var keepAlive: [any Sendable] = []
if arguments.first == "serve" { await serve(Array(arguments.dropFirst())) }
switch (arguments.first, arguments.dropFirst().first) {
case ("signals", "main"):
    // Formed in main.swift, i.e. on the main actor: the shape that crashed a service in issue 14.
    keepAlive.append(ShutdownSignals { signal in service.stop(signal) })
case ("signals", "detached"):
    keepAlive.append(await Task.detached { ShutdownSignals { service.stop($0) } }.value)
case ("signals", "queue"):
    keepAlive.append(DispatchQueue.global().sync { ShutdownSignals { service.stop($0) } })
case ("signals", "actor"):
    let owner = Owner()
    await owner.start(service)
    keepAlive.append(owner)
case ("signals", "stream"):
    let stream = ShutdownSignals.stream()
    Task.detached { for await signal in stream { service.stop(signal); break } }
case ("signals", "raise"):
    // The signal comes the instant the helper exists, before anything else could run.
    keepAlive.append(ShutdownSignals { service.stop($0) })
    kill(getpid(), SIGTERM)
case ("signals", "late"):
    // The handler is registered only after a line on standard input, which the test sends after the signal.
    let signals = ShutdownSignals()
    keepAlive.append(signals)
    line("ready")
    _ = readLine()
    signals.onSignal { service.stop($0) }
case ("signals", "blocked"):
    blockedMain()
default:
    line("usage: ObservabilityProbe signals main|detached|queue|actor|stream|raise|late|blocked")
    exit(64)
}
if arguments.dropFirst().first != "late" { line("ready") }
let signal = await service.run()
line("stopping signal=\(signal.name)")
withExtendedLifetime(keepAlive) {}
exit(0)
