import Foundation
import RDKafka
import Synchronization

/// `produce`: the Kafka half of the drain with no PostgreSQL in the way: the ceiling the connector's producing
/// can reach on this machine.
///
/// The same records as the drain's outbox rows (keys `product-0…999`, two topics alternating, a jsonb-shaped
/// payload of ~300 B, the `event_id`, `event_type` and `tailgate_*` headers, one transaction's headers per ten
/// records), built in memory before the clock starts, produced through ``KafkaProducer`` with the connector's
/// settings and acknowledged like the connector's: at most `--max-in-flight` unacknowledged, delivery reports in
/// batches. Reports the seconds from the first send to the last acknowledgement, and the CPU seconds of that window
/// (building the records is not charged).
enum ProduceOnlyBench {
    static func run(_ arguments: BenchArguments) async throws {
        let expected = try arguments.int("expect")
        let limit = try arguments.int("max-in-flight", default: 20_000)
        let records = (0..<expected).map(record)
        let progress = Progress(limit: limit)
        let producer = try KafkaProducer(
            configuration: .init(properties: ["bootstrap.servers": try arguments.string("bootstrap"), "client.id": "tailgate-bench",
                                              "statistics.interval.ms": "1000", "reconnect.backoff.max.ms": "1000"]),
            log: { _ in }, onDeliveries: { progress.acknowledged($0) })
        producer.prepare(topics: ["order-events", "catalog-events"])
        let cpuBefore = cpuSeconds()
        let start = ContinuousClock.now
        for (token, record) in records.enumerated() {
            try await progress.waitForRoom()
            progress.sent()
            try await producer.send(record, token: UInt64(token)) // does not suspend while the queue has room
        }
        try await progress.waitForAll()
        let elapsed = ContinuousClock.now - start
        let cpu = cpuSeconds() - cpuBefore
        await producer.close(timeout: .seconds(10))
        var result = Measurements()
        result.label("contender", "produce-only")
        result["events"] = Double(expected)
        result["start_to_last_ack_s"] = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        result.processCost()
        result["cpu_seconds"] = cpu
        result.printJSON()
    }

    /// Record `index` of the drain's load, as the connector would route it.
    static func record(_ index: Int) -> KafkaRecord {
        let transaction = index / 10, row = index % 10
        let product = "product-\(index % 1000)"
        let payload = "{\"note\": \"\(String(repeating: "x", count: 200))\", \"seq\": \(index), \"userId\": \"user-\(row)\", \"productId\": \"\(product)\"}"
        return KafkaRecord(topic: row % 2 == 0 ? "order-events" : "catalog-events", key: Array(product.utf8), value: Array(payload.utf8),
                           headers: [KafkaHeader(name: "event_id", string: UUID().uuidString.lowercased()),
                                     KafkaHeader(name: "event_type", string: "ProductViewed"),
                                     KafkaHeader(name: "tailgate_lsn", string: "0/\(String(0x1000000 + transaction * 4096, radix: 16, uppercase: true))"),
                                     KafkaHeader(name: "tailgate_xid", string: String(1000 + transaction)),
                                     KafkaHeader(name: "tailgate_commit_time", string: String(1_765_000_000_000_000 + transaction))])
    }

    private static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }

    /// Records sent and acknowledged; the sender waits for room below the limit, like the connector's pipeline.
    final class Progress: Sendable {
        private struct State {
            var sent = 0
            var acknowledged = 0
            var failed = false
            var waiter: CheckedContinuation<Void, any Error>?
            var waitingFor = 0
        }

        private let state = Mutex(State())
        private let limit: Int

        init(limit: Int) { self.limit = limit }

        func sent() { state.withLock { $0.sent += 1 } }

        func acknowledged(_ reports: [DeliveryReport]) {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                state.acknowledged += reports.count { $0.error == nil }
                if reports.contains(where: { $0.error != nil }) { state.failed = true }
                guard let waiter = state.waiter, state.failed || state.acknowledged >= state.waitingFor else { return nil }
                state.waiter = nil
                return waiter
            }
            waiter?.resume()
        }

        func waitForRoom() async throws {
            try await wait(roomOnly: true)
        }

        func waitForAll() async throws {
            try await wait(roomOnly: false)
        }

        /// Waits until fewer than `limit` records are unacknowledged (`roomOnly`), or all sent ones are acknowledged.
        private func wait(roomOnly: Bool) async throws {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Bool in
                    let needed = roomOnly ? state.sent - limit + 1 : state.sent
                    if state.failed || state.acknowledged >= needed { return true }
                    state.waitingFor = needed
                    state.waiter = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
            if state.withLock({ $0.failed }) { throw BenchError("Kafka refused records") }
        }
    }
}
