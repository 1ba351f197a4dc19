import Foundation
import Observability
import TestSupport
import Testing

/// `ShutdownSignals` in a child process (`ObservabilityProbe signals MODE`), created in every kind of context.
@Suite struct ShutdownSignalsTests {
    func probe(_ mode: String, withInput: Bool = false) throws -> ChildProcess {
        let output = NSTemporaryDirectory() + "tailgate-probe-\(getpid())-\(mode)-\(UUID().uuidString).log"
        return try ChildProcess(ChildProcess.productsDirectory + "/ObservabilityProbe", ["signals", mode], outputPath: output, withInput: withInput)
    }

    /// The handler runs off the main queue whatever context created the helper; `main` is issue 14's case (a
    /// closure formed in main-actor code, run on another queue), `blocked` a main thread that never services
    /// the main queue.
    @Test(arguments: ["main", "detached", "queue", "actor", "stream", "blocked"])
    func sigtermStopsTheServiceFromAnyContext(mode: String) async throws {
        let child = try probe(mode)
        #expect(await child.waitForLine { $0 == "ready" } != nil, "\(child.output)")
        child.signal(SIGTERM)
        let status = await child.exitStatus(timeout: .seconds(20))
        #expect(status == 0, "\(mode): exit \(status) (132 = SIGILL, the actor isolation check): \(child.output)")
        #expect(child.outputLines.contains("stopping signal=SIGTERM"), "\(child.output)")
    }

    @Test func sigintIsHandledToo() async throws {
        let child = try probe("main")
        #expect(await child.waitForLine { $0 == "ready" } != nil)
        child.signal(SIGINT)
        #expect(await child.exitStatus(timeout: .seconds(20)) == 0, "\(child.output)")
        #expect(child.outputLines.contains("stopping signal=SIGINT"))
    }

    /// A signal sent the instant `ShutdownSignals` returns is handled, not lost. (A dispatch signal source is armed
    /// asynchronously, on libdispatch's manager thread: a signal before that is ignored.)
    @Test func aSignalRightAfterCreationIsNotLost() async throws {
        for round in 0..<5 {
            let child = try probe("raise")
            let status = await child.exitStatus(timeout: .seconds(10))
            #expect(status == 0 && child.outputLines.contains("stopping signal=SIGTERM"), "round \(round): exit \(status): \(child.output)")
        }
    }

    /// A signal that arrives before anyone registered a handler is remembered, not lost and not fatal.
    @Test func aSignalBeforeTheHandlerIsRegisteredIsDeliveredToIt() async throws {
        let child = try probe("late", withInput: true)
        #expect(await child.waitForLine { $0 == "ready" } != nil)
        child.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        child.send("go")
        #expect(await child.exitStatus(timeout: .seconds(20)) == 0, "\(child.output)")
        #expect(child.outputLines.contains("stopping signal=SIGTERM"))
    }

    /// In this process, with SIGUSR1: two helpers share a signal; cancelling one leaves the other catching it, and
    /// cancelling the last gives the signal its earlier action back.
    @Test func cancelGivesTheSignalBackOnlyWhenNoOneElseHandlesIt() async throws {
        func currentHandler() -> UInt {
            var action = sigaction()
            sigaction(SIGUSR1, nil, &action)
            return unsafeBitCast(action.__sigaction_handler.sa_handler, to: UInt.self)
        }
        let usr1 = ShutdownSignal(number: SIGUSR1, name: "SIGUSR1")
        let before = currentHandler()
        let first = ShutdownSignals([usr1])
        let second = ShutdownSignals([usr1])
        #expect(currentHandler() != before)
        first.cancel()
        kill(getpid(), SIGUSR1)
        #expect(await eventually(timeout: .seconds(10)) { second.firstReceived == usr1 })
        #expect(first.firstReceived == nil, "a cancelled helper hears nothing")
        second.cancel()
        #expect(currentHandler() == before)
    }
}
