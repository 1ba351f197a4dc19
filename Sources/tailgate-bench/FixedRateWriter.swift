import LibPQ

/// `write`: commerce-like outbox rows at a fixed offered rate, 10 rows per transaction, on one connection.
///
/// Each transaction is due at `start + n × 10 / rate`; a writer that falls behind does not sleep, and reports the
/// rate it achieved.
enum FixedRateWriter {
    static func run(_ arguments: BenchArguments) async throws {
        let connection = try await Connection.connect(try arguments.string("conninfo"))
        let rate = try arguments.int("rate")
        let seconds = try arguments.int("seconds")
        let table = SQLIdentifier.quote(try arguments.string("table"))
        let transactions = max(1, rate * seconds / 10)
        let interval = Duration.seconds(10) / rate
        let sql = """
            INSERT INTO \(table) (id, topic, aggregate_type, aggregate_id, event_type, payload)
            SELECT gen_random_uuid(), CASE WHEN g % 2 = 0 THEN 'order-events' ELSE 'catalog-events' END, 'product',
                   'product-' || (($1::int + g) % 1000), 'ProductViewed',
                   jsonb_build_object('productId', 'product-' || (($1::int + g) % 1000), 'userId', 'user-' || g,
                                      'seq', $1::int + g, 'note', repeat('x', 200))
            FROM generate_series(0, 9) g
            """
        let start = ContinuousClock.now
        for number in 0..<transactions {
            let due = start + interval * number
            if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
            try await connection.execute(sql, [number * 10])
        }
        let elapsed = (ContinuousClock.now - start).seconds
        await connection.close()
        var result = Measurements()
        result.label("contender", "writer")
        result["offered_events_per_s"] = Double(rate)
        result["achieved_events_per_s"] = Double(transactions * 10) / elapsed
        result["events"] = Double(transactions * 10)
        result.printJSON()
    }
}
