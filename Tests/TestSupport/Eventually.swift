/// Polls `condition` until it returns true or `timeout` passes; returns whether it became true.
///
/// For waiting on asynchronous effects (a slot position, a delivery) without fixed sleeps. The default timeout is
/// generous: a two-core machine running the whole suite in parallel can take tens of seconds to start a pipeline.
public func eventually(timeout: Duration = .seconds(45), every interval: Duration = .milliseconds(50),
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    PoolWatchdog.start()
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}
