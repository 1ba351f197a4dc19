// A test fixture for ObservabilityTests, run as a child process: `signals MODE` creates ShutdownSignals in the
// context MODE names and exits 0 after printing `stopping signal=NAME` once a signal stopped its "service".
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
    line("usage: ObservabilityProbe signals main|detached|queue|actor|stream|late|blocked")
    exit(64)
}
if arguments.dropFirst().first != "late" { line("ready") }
let signal = await service.run()
line("stopping signal=\(signal.name)")
withExtendedLifetime(keepAlive) {}
exit(0)
