import Foundation
import LibPQ
import RDKafka
import Synchronization

/// `poll`: the relay the connector replaces, for comparison only.
///
/// Every `--interval-ms` it locks up to `--batch` READY rows (`FOR UPDATE SKIP LOCKED`, oldest first), produces
/// them with the same Kafka module and settings as the connector, waits for every acknowledgement, marks them
/// SENT and commits. Latency runs from each row's commit timestamp (`track_commit_timestamp`) to its
/// acknowledgement.
enum PollingRelay {
    static func run(_ arguments: BenchArguments) async throws {
        let connection = try await Connection.connect(try arguments.string("conninfo"))
        let expected = try arguments.int("expect")
        let batch = try arguments.int("batch", default: 1000)
        let interval = Duration.milliseconds(try arguments.int("interval-ms"))
        let table = SQLIdentifier.quote(try arguments.string("table"))
        let samples = SampleLog()
        let commitTimes = Mutex<[UInt64: Double]>([:])
        let failures = Atomic<Int>(0)
        let producer = try KafkaProducer(
            configuration: .init(properties: ["bootstrap.servers": try arguments.string("bootstrap")]),
            log: { _ in }) { report in
                guard report.error == nil else { failures.add(1, ordering: .relaxed); return }
                if let committed = commitTimes.withLock({ $0.removeValue(forKey: report.token) }) {
                    samples.record(max(0, Date().timeIntervalSince1970 - committed))
                }
            }
        var token: UInt64 = 0
        let start = ContinuousClock.now
        var polls = 0
        while samples.total < expected {
            if failures.load(ordering: .relaxed) > 0 { throw BenchError("Kafka refused records") }
            polls += 1
            try await connection.execute("BEGIN")
            let rows = try await connection.query("""
                SELECT id::text, topic, aggregate_id, event_type, payload::text,
                       extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 AS committed
                FROM \(table) WHERE status = 'READY' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
                """, [batch]).rows
            var ids: [String?] = []
            for row in rows {
                token += 1
                let committed = Double(row["committed"] ?? "") ?? Date().timeIntervalSince1970
                commitTimes.withLock { $0[token] = committed }
                let record = KafkaRecord(topic: row["topic"] ?? "", key: Array((row["aggregate_id"] ?? "").utf8),
                                         value: Array((row["payload"] ?? "").utf8),
                                         headers: [KafkaHeader(name: "event_id", string: row["id"] ?? ""),
                                                   KafkaHeader(name: "event_type", string: row["event_type"] ?? "")])
                try await producer.send(record, token: token)
                ids.append(row["id"])
            }
            if !rows.isEmpty {
                guard await producer.flush(timeout: .seconds(60)) == 0 else { throw BenchError("Kafka did not acknowledge within 60 s") }
                try await connection.execute("UPDATE \(table) SET status = 'SENT' WHERE id = ANY($1::uuid[])",
                                             [PostgresArray.literal(ids)])
            }
            try await connection.execute("COMMIT")
            if rows.count < batch { try await Task.sleep(for: interval) }
        }
        await producer.close(timeout: .seconds(5))
        await connection.close()
        var result = Measurements()
        result.label("contender", "polling-relay")
        result["interval_ms"] = interval.seconds * 1000
        result["events"] = Double(samples.total)
        result["polls"] = Double(polls)
        result["start_to_last_ack_s"] = samples.last.map { ($0 - start).seconds }
        result["first_to_last_ack_s"] = samples.first.flatMap { first in samples.last.map { ($0 - first).seconds } }
        result.latencies("commit_to_ack", samples.all)
        result.processCost()
        result.printJSON()
    }
}
