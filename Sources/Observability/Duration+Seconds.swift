extension Duration {
    /// The duration in seconds, fractions included: what Prometheus gauges, logs and benchmarks report.
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
