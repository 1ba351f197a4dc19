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

/// Latency samples appended from delivery threads.
final class SampleLog: Sendable {
    private let samples = Mutex<[Double]>([])
    private let count = Atomic<Int>(0)
    private let firstAt = Mutex<ContinuousClock.Instant?>(nil)
    private let lastAt = Mutex<ContinuousClock.Instant?>(nil)

    func record(_ seconds: Double) {
        let now = ContinuousClock.now
        samples.withLock { $0.append(seconds) }
        firstAt.withLock { if $0 == nil { $0 = now } }
        lastAt.withLock { $0 = now }
        count.add(1, ordering: .relaxed)
    }

    var total: Int { count.load(ordering: .relaxed) }
    var all: [Double] { samples.withLock { $0 } }
    var first: ContinuousClock.Instant? { firstAt.withLock { $0 } }
    var last: ContinuousClock.Instant? { lastAt.withLock { $0 } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
