/// Observations counted into fixed buckets, for ``PrometheusText/histogram(_:help:labels:_:)``.
public struct PrometheusHistogram: Sendable, Hashable {
    /// The buckets' upper bounds, ascending (the `le` labels); `+Inf` is implied.
    public let upperBounds: [Double]
    /// Observations per bucket, not cumulative; one more than ``upperBounds`` (the last is above every bound).
    public private(set) var bucketCounts: [Int]
    /// The sum of all observations.
    public private(set) var sum = 0.0
    /// The number of observations.
    public private(set) var count = 0

    /// Latency buckets from 1 ms to 10 s, in seconds.
    public static let latencySeconds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Creates an empty histogram.
    ///
    /// - Parameter upperBounds: Ascending upper bounds; unsorted or repeated bounds are sorted and merged.
    public init(upperBounds: [Double]) {
        self.upperBounds = Array(Set(upperBounds.filter { $0.isFinite })).sorted()
        self.bucketCounts = Array(repeating: 0, count: self.upperBounds.count + 1)
    }

    /// Counts one observation into the first bucket whose bound is at least `value`.
    public mutating func observe(_ value: Double) {
        let bucket = upperBounds.firstIndex { value <= $0 } ?? upperBounds.count
        bucketCounts[bucket] += 1
        sum += value
        count += 1
    }
}
