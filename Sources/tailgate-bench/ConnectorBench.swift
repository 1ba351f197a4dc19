import Foundation
import Observability
@_spi(Benchmarks) import OutboxConnector
import Synchronization

/// `connector`: the real ``Connector`` in this process, until `--expect` records were acknowledged.
///
/// With `--discard` records are acknowledged at once and sent nowhere (decode, route and confirm only);
/// `--coalesce-us N` sets the reader's pause after a small burst under load (0: none). Reports
/// seconds from start to the first and last acknowledgement, start to streaming, commit-to-acknowledgement
/// latencies, peak RSS and CPU seconds. Writes `streaming` to standard error when the stream is open, so a
/// writer can be started after it.
enum ConnectorBench {
    private static func stoppedEarly(_ outcome: (any Error)?, expected: Int) -> BenchError {
        BenchError("the connector stopped before \(expected) acknowledgements: \(outcome.map { "\($0)" } ?? "no error")")
    }

    static func run(_ arguments: BenchArguments) async throws {
        let configuration = try ConnectorConfiguration.load(path: try arguments.string("config"))
        let expected = try arguments.int("expect")
        let samples = SampleLog()
        var options = Connector.Options(stateDirectory: try arguments.string("state-dir"))
        options.discardRecords = arguments.flags.contains("discard")
        options.readCoalescing = .microseconds(try arguments.int("coalesce-us", default: 250))
        options.onAcknowledged = { samples.record($0) }
        let connector = Connector(configuration: configuration, options: options, logger: EventLogger(minimumLevel: .warning))
        let finished = Mutex<(any Error)??>(nil)
        let start = ContinuousClock.now
        let running = Task {
            do {
                try await connector.run()
                finished.withLock { $0 = .some(nil) }
            } catch {
                finished.withLock { $0 = .some(error) }
            }
            samples.release()
        }
        // Polled until the stream is open (a writer may be waiting for the line); then the harness waits for the
        // last acknowledgement without waking up meanwhile.
        var streamingAt: ContinuousClock.Instant?
        while streamingAt == nil, samples.total < expected {
            if let outcome = finished.withLock({ $0 }) { throw Self.stoppedEarly(outcome, expected: expected) }
            if connector.metrics.isStreaming {
                streamingAt = .now
                FileHandle.standardError.write(Data("streaming\n".utf8))
            } else {
                try await Task.sleep(for: .microseconds(500))
            }
        }
        await samples.waitFor(expected)
        if samples.total < expected, let outcome = finished.withLock({ $0 }) { throw Self.stoppedEarly(outcome, expected: expected) }
        connector.requestStop()
        await running.value
        var result = Measurements()
        result.label("contender", options.discardRecords ? "connector-null-sink" : "connector-kafka")
        result["coalesce_us"] = Double(try arguments.int("coalesce-us", default: 250))
        result["events"] = Double(samples.total)
        result["start_to_streaming_ms"] = streamingAt.map { ($0 - start).seconds * 1000 }
        result["start_to_first_ack_s"] = samples.first.map { ($0 - start).seconds }
        result["start_to_last_ack_s"] = samples.last.map { ($0 - start).seconds }
        result["first_to_last_ack_s"] = samples.first.flatMap { first in samples.last.map { ($0 - first).seconds } }
        result.latencies("commit_to_ack", samples.all)
        result.processCost()
        result.printJSON()
    }
}
