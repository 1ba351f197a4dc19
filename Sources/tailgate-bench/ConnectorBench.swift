import Foundation
import Observability
@_spi(Benchmarks) import OutboxConnector
import Synchronization

/// `connector`: the real ``Connector`` in this process, until `--expect` records were acknowledged.
///
/// With `--discard` records are acknowledged at once and sent nowhere (decode, route and confirm only). Reports
/// seconds from start to the first and last acknowledgement, start to streaming, commit-to-acknowledgement
/// latencies, peak RSS and CPU seconds. Writes `streaming` to standard error when the stream is open, so a
/// writer can be started after it.
enum ConnectorBench {
    static func run(_ arguments: BenchArguments) async throws {
        let configuration = try ConnectorConfiguration.load(path: try arguments.string("config"))
        let expected = try arguments.int("expect")
        let samples = SampleLog()
        var options = Connector.Options(stateDirectory: try arguments.string("state-dir"))
        options.discardRecords = arguments.flags.contains("discard")
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
        }
        var streamingAt: ContinuousClock.Instant?
        while samples.total < expected {
            if let outcome = finished.withLock({ $0 }) {
                throw BenchError("the connector stopped before \(expected) acknowledgements: \(outcome.map { "\($0)" } ?? "no error")")
            }
            if streamingAt == nil, connector.metrics.isStreaming {
                streamingAt = .now
                FileHandle.standardError.write(Data("streaming\n".utf8))
            }
            try await Task.sleep(for: .microseconds(500))
        }
        connector.requestStop()
        await running.value
        var result = Measurements()
        result.label("contender", options.discardRecords ? "connector-null-sink" : "connector-kafka")
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
