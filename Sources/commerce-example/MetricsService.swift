import Dispatch
import Foundation
import LibPQ
import Observability
import OutboxConsumer

/// `commerce-example metrics`: the back office, built on OutboxConsumer. Keeps `product_metrics` and
/// `order_status` in its own database, exactly once.
struct MetricsService {
    var postgres: String
    var bootstrap: String
    var group: String
    /// Where to serve the consumer's metrics (`/metrics`, Prometheus text) and `/healthz`; `nil` for nowhere.
    var metricsListen: String?

    struct LikeChanged: Decodable { let productId: String; let delta: Int }
    struct ProductSold: Decodable { let productId: String; let quantity: Int }
    struct ProductViewed: Decodable { let productId: String }
    struct Payment: Decodable { let orderId: String }

    func run() async throws {
        // SIGTERM/SIGINT are taken over first, so one that arrives while starting is not lost.
        let signals = ShutdownSignals()
        let db = try await Connection.connect(postgres)
        for statement in BackOfficeSchema.statements { try await db.execute(statement) }
        await db.close()
        let consumer = try OutboxConsumer(configuration: .init(
            groupID: group, topics: ["catalog-events", "order-events"], kafka: ["bootstrap.servers": bootstrap],
            postgres: postgres, deadLetterTopic: "\(group).dead-letter"))
        signals.onSignal { _ in consumer.stop() }
        let group = self.group
        let server = try metricsListen.map { listen in
            try MetricsServer(listen: listen, setting: "--metrics-listen", metrics: { consumer.metrics.render(group: group) }, healthy: { true })
        }
        if let server { print("metrics: serving /metrics on port \(server.port)") }
        let progress = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                let s = consumer.metrics.snapshot
                print("metrics: applied=\(s.applied) duplicates_skipped=\(s.duplicatesSkipped) dead_lettered=\(s.deadLettered)")
            }
        }
        try await consumer.run { event, db in
            switch event.type {
            case "ProductViewed":
                try bump(db, product: try event.decode(ProductViewed.self).productId, views: 1)
            case "LikeChanged":
                let like = try event.decode(LikeChanged.self)
                try bump(db, product: like.productId, likes: like.delta)
            case "ProductSold":
                let sale = try event.decode(ProductSold.self)
                try bump(db, product: sale.productId, sales: sale.quantity)
            case "PaymentCompleted", "PaymentFailed":
                let payment = try event.decode(Payment.self)
                try db.execute("""
                    INSERT INTO order_status (order_id, status) VALUES ($1, $2)
                    ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()
                    """, [payment.orderId, event.type == "PaymentCompleted" ? "confirmed" : "cancelled"])
            default:
                break // other events are not this service's business
            }
        }
        progress.cancel()
        server?.stop()
        withExtendedLifetime(signals) {}
        let s = consumer.metrics.snapshot
        print("metrics: stopped, applied=\(s.applied) duplicates_skipped=\(s.duplicatesSkipped) dead_lettered=\(s.deadLettered)")
    }
}

private func bump(_ db: Session, product: String, likes: Int = 0, views: Int = 0, sales: Int = 0) throws {
    try db.execute("""
        INSERT INTO product_metrics (product_id, like_count, view_count, sales_count) VALUES ($1, $2, $3, $4)
        ON CONFLICT (product_id) DO UPDATE SET like_count = product_metrics.like_count + EXCLUDED.like_count,
            view_count = product_metrics.view_count + EXCLUDED.view_count,
            sales_count = product_metrics.sales_count + EXCLUDED.sales_count, updated_at = now()
        """, [product, likes, views, sales])
}
