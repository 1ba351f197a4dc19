import OutboxConsumer

struct LikeChanged: Decodable { let productId: String; let liked: Bool }

let consumer = try OutboxConsumer(configuration: .init(
    groupID: "product-metrics",
    topics: ["catalog-events", "order-events"],
    kafka: ["bootstrap.servers": "localhost:9092"],
    postgres: "host=localhost dbname=backoffice"))

// SIGTERM or SIGINT (or cancelling the task that runs `run`): the batch in progress commits or rolls back, the
// consumer leaves its group, and `run` returns.
let signals = ShutdownSignals()
signals.onSignal { _ in consumer.stop() }

try await consumer.run { event, db in     // db: the batch's transaction, on the consumer's connection
    switch event.type {
    case "LikeChanged":
        guard let like = try? event.decode(LikeChanged.self) else {
            throw HandlerFailure(.poison, "not a LikeChanged payload")   // retrying cannot help
        }
        try db.execute("UPDATE product_metrics SET like_count = like_count + $2 WHERE product_id = $1",
                       [like.productId, like.liked ? 1 : -1])
    default:
        break
    }
}
