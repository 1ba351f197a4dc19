extension NetworkLab {
    /// Cuts `a` from `b`, watches for `signals` while the cut lasts, heals it, then waits until `recovered` holds.
    ///
    /// Every wait is bounded: the cut by `length`, the recovery by `recoveryTimeout`.
    ///
    /// - Parameters:
    ///   - signals: Signs of detection by name (a log line, `/healthz` 503, a metric), each checked about four
    ///     times a second until it first holds.
    ///   - beforeHeal: Runs at the end of the cut, while it still holds (e.g. to check the slot against Kafka).
    ///   - recovered: Given the heal's instant; true once the pipeline moved again after it.
    public func measureCut(_ name: String, between a: String, and b: String, length: CutMeasurement.Length,
                           signals: [(String, @Sendable () async -> Bool)],
                           beforeHeal: @Sendable () async throws -> Void = {},
                           recoveryTimeout: Duration = .seconds(60),
                           recovered: @Sendable (ContinuousClock.Instant) async -> Bool) async throws -> CutMeasurement {
        let interval = Duration.milliseconds(250)
        var detected: [String: Duration] = [:]
        try await cut(a, b)
        let cutAt = ContinuousClock.now
        while true {
            for (signal, check) in signals where detected[signal] == nil {
                if await check() { detected[signal] = ContinuousClock.now - cutAt }
            }
            let elapsed = ContinuousClock.now - cutAt
            switch length {
            case .fixed(let hold):
                if elapsed >= hold { break }
                try? await Task.sleep(for: min(interval, hold - elapsed))
                continue
            case .untilDetected(let atLeast, let atMost):
                if elapsed >= atMost || (elapsed >= atLeast && detected.count == signals.count) { break }
                try? await Task.sleep(for: interval)
                continue
            }
            break
        }
        try await beforeHeal()
        try await heal(a, b)
        let healedAt = ContinuousClock.now
        let held = healedAt - cutAt
        var recoveredAfter: Duration?
        while ContinuousClock.now - healedAt < recoveryTimeout {
            if await recovered(healedAt) {
                recoveredAfter = ContinuousClock.now - healedAt
                break
            }
            try? await Task.sleep(for: interval)
        }
        let measurement = CutMeasurement(name: name, held: held, detected: detected, signals: signals.map(\.0), recovered: recoveredAfter)
        print(measurement)
        return measurement
    }
}
