import Foundation
import Synchronization

/// What one benchmark contender measured, printed as one JSON object on standard output.
struct Measurements: Sendable {
    private var values: [String: Double] = [:]
    private var labels: [String: String] = [:]

    subscript(_ key: String) -> Double? {
        get { values[key] }
        set { values[key] = newValue }
    }

    mutating func label(_ key: String, _ value: String) { labels[key] = value }

    /// Adds p50, p99 and max (milliseconds) of `samples` (seconds) under `prefix`.
    mutating func latencies(_ prefix: String, _ samples: [Double]) {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return }
        func at(_ quantile: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * quantile).rounded(.down)))] }
        values["\(prefix)_p50_ms"] = at(0.50) * 1000
        values["\(prefix)_p99_ms"] = at(0.99) * 1000
        values["\(prefix)_max_ms"] = sorted.last! * 1000
        values["\(prefix)_samples"] = Double(sorted.count)
    }

    /// Adds this process's peak RSS and CPU seconds.
    mutating func processCost() {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        values["cpu_seconds"] = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
        values["peak_rss_mib"] = Double(usage.ru_maxrss) / 1024
    }

    func printJSON() {
        var object: [String: Any] = labels
        for (key, value) in values { object[key] = (value * 1000).rounded() / 1000 }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Latency samples appended from delivery threads, with the times of the first and the last.
final class SampleLog: Sendable {
    private struct State {
        var samples: [Double] = []
        var first: ContinuousClock.Instant?
        var last: ContinuousClock.Instant?
        /// A task waiting for `count` samples (``waitFor(_:)``).
        var waiter: (count: Int, continuation: CheckedContinuation<Void, Never>)?
        var released = false
    }

    private let state = Mutex(State())

    func record(_ seconds: Double) {
        let now = ContinuousClock.now
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.samples.append(seconds)
            if state.first == nil { state.first = now }
            state.last = now
            guard let waiter = state.waiter, state.samples.count >= waiter.count else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Returns once `count` samples were recorded, or after ``release()``: an event, not a poll, so that the
    /// harness costs the process under test no wake-ups while it runs.
    func waitFor(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.released || state.samples.count >= count { return true }
                state.waiter = (count, continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Ends a ``waitFor(_:)`` early (the process under test stopped).
    func release() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.released = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume()
    }

    var total: Int { state.withLock { $0.samples.count } }
    var all: [Double] { state.withLock { $0.samples } }
    var first: ContinuousClock.Instant? { state.withLock { $0.first } }
    var last: ContinuousClock.Instant? { state.withLock { $0.last } }
}
