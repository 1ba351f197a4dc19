import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The process-wide half of ``ShutdownSignals``: a `sigaction` handler that writes each signal's number to a
/// pipe, and a thread of its own that reads the pipe and calls the listeners.
///
/// Why not a dispatch signal source: libdispatch arms one asynchronously on its manager thread, so a signal that
/// comes right after `resume()` is lost; and it installs its own handler once per signal for the life of the
/// process, which a later "restore the default action" breaks. With `sigaction`, the signal is caught from the
/// moment registration returns, on whatever thread the kernel picks, and the handler does nothing but one
/// `write(2)` (async-signal-safe); everything else runs on the relay's thread, which also unblocks the handled
/// signals for itself.
enum SignalRelay {
    private struct Listener {
        let signals: Set<Int32>
        let deliver: @Sendable (Int32) -> Void
    }

    private struct State {
        var listeners: [Int: Listener] = [:]
        var nextID = 0
        /// The disposition each handled signal had before, restored when its last listener goes.
        var previous: [Int32: sigaction] = [:]
        var started = false
    }

    /// The pipe's write end, read by the signal handler (an atomic load: async-signal-safe, no lazy init there,
    /// since it is touched before any handler is installed).
    fileprivate static let writeEnd = Atomic<Int32>(-1)
    private static let state = Mutex(State())

    /// Adds a listener for `signals`; from when this returns, each of them is caught and passed to `deliver` on
    /// the relay's thread. Returns the id for ``remove(_:)``.
    static func add(_ signals: [Int32], deliver: @escaping @Sendable (Int32) -> Void) -> Int {
        state.withLock { state in
            if !state.started {
                startRelay()
                state.started = true
            }
            let id = state.nextID
            state.nextID += 1
            state.listeners[id] = Listener(signals: Set(signals), deliver: deliver)
            for number in Set(signals) where state.previous[number] == nil {
                var action = sigaction()
                action.__sigaction_handler = .init(sa_handler: relaySignal)
                action.sa_flags = SA_RESTART
                sigemptyset(&action.sa_mask)
                var previous = sigaction()
                sigaction(number, &action, &previous)
                state.previous[number] = previous
            }
            // Byte 0 (no signal has number 0) asks the relay thread to unblock the signals handled now.
            var nudge: UInt8 = 0
            _ = write(writeEnd.load(ordering: .relaxed), &nudge, 1)
            return id
        }
    }

    /// A process can start with signals blocked (a blocked mask is inherited across exec, and threads inherit
    /// their creator's): the relay thread unblocks the handled ones for itself, so each always has a thread to run
    /// its handler on. One that came while all threads blocked it was pending, and is delivered now.
    private static func unblockHandledSignals() {
        var handled = sigset_t()
        sigemptyset(&handled)
        for number in state.withLock({ Array($0.previous.keys) }) { sigaddset(&handled, number) }
        pthread_sigmask(SIG_UNBLOCK, &handled, nil)
    }

    /// Removes a listener; a signal no listener wants any more gets its earlier disposition back.
    static func remove(_ id: Int) {
        state.withLock { state in
            guard state.listeners.removeValue(forKey: id) != nil else { return }
            let stillWanted = state.listeners.values.reduce(into: Set<Int32>()) { $0.formUnion($1.signals) }
            for (number, previous) in state.previous where !stillWanted.contains(number) {
                var restore = previous
                sigaction(number, &restore, nil)
                state.previous[number] = nil
            }
        }
    }

    private static func startRelay() {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { fatalError("ShutdownSignals: pipe() failed: \(String(cString: strerror(errno)))") }
        ListeningSocket.makeNonBlockingAndCloseOnExec(ends[1])
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        writeEnd.store(ends[1], ordering: .releasing)
        let readEnd = ends[0]
        let thread = Thread {
            unblockHandledSignals()
            var numbers = [UInt8](repeating: 0, count: 64)
            while true {
                let count = numbers.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                for number in numbers[..<count].map(Int32.init) {
                    if number == 0 {
                        unblockHandledSignals()
                        continue
                    }
                    let listeners = state.withLock { $0.listeners.values.filter { $0.signals.contains(number) } }
                    for listener in listeners { listener.deliver(number) }
                }
            }
        }
        thread.name = "tailgate.shutdown-signals"
        thread.start()
    }
}

/// The `sigaction` handler: one `write(2)` of the signal number, errno preserved. Nothing else is safe here.
private func relaySignal(_ number: Int32) {
    let savedErrno = errno
    var byte = UInt8(truncatingIfNeeded: number)
    _ = write(SignalRelay.writeEnd.load(ordering: .relaxed), &byte, 1)
    errno = savedErrno
}
