import Foundation
import LibPQ

/// `commerce-example api-load`: business actions, each one transaction that changes business rows and inserts
/// its outbox rows.
struct APILoad {
    var postgres: String
    var rate: Int
    var events: Int
    var products: Int
    var seed: UInt64

    func run() async throws {
        let db = try await Connection.connect(postgres)
        for statement in CommerceSchema.statements { try await db.execute(statement) }
        var random = SplitMix64(seed: seed)
        var produced = 0, actions = 0
        let started = ContinuousClock.now
        var lastReport = started
        while produced < events {
            let product = "product-\(random.next() % UInt64(products) + 1)"
            let user = "user-\(random.next() % 500 + 1)"
            let roll = random.next() % 100
            let written: Int
            if roll < 45 {
                written = try await view(db, user: user, product: product)
            } else if roll < 75 {
                written = try await like(db, user: user, product: product)
            } else {
                written = try await order(db, customer: user, random: &random)
            }
            produced += written
            actions += 1
            // Pace to `rate` events per second.
            let due = started + .milliseconds(produced * 1000 / max(1, rate))
            if due > ContinuousClock.now { try await Task.sleep(until: due) }
            if ContinuousClock.now - lastReport >= .seconds(1) {
                print("api-load: \(produced) events from \(actions) business transactions")
                lastReport = .now
            }
        }
        print("api-load: done, \(produced) events from \(actions) business transactions")
        await db.close()
    }

    private func outbox(_ tx: Session, topic: String, aggregateType: String, aggregateID: String, type: String, payload: [String: Any]) throws {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]), as: UTF8.self)
        try tx.execute("""
            INSERT INTO outbox_event (id, topic, aggregate_type, aggregate_id, event_type, payload)
            VALUES (gen_random_uuid(), $1, $2, $3, $4, $5::jsonb)
            """, [topic, aggregateType, aggregateID, type, json])
    }

    private func view(_ db: Connection, user: String, product: String) async throws -> Int {
        try await db.transaction { tx in
            try tx.execute("INSERT INTO product_views (user_id, product_id) VALUES ($1, $2)", [user, product])
            try outbox(tx, topic: "catalog-events", aggregateType: "product", aggregateID: product, type: "ProductViewed",
                       payload: ["productId": product, "userId": user, "viewedAt": ISO8601DateFormatter().string(from: Date())])
            return 1
        }
    }

    private func like(_ db: Connection, user: String, product: String) async throws -> Int {
        try await db.transaction { tx in
            let liked = try tx.query("""
                INSERT INTO product_likes (user_id, product_id, liked) VALUES ($1, $2, true)
                ON CONFLICT (user_id, product_id) DO UPDATE SET liked = NOT product_likes.liked, updated_at = now()
                RETURNING liked
                """, [user, product]).first?.bool("liked") ?? true
            try outbox(tx, topic: "catalog-events", aggregateType: "product", aggregateID: product, type: "LikeChanged",
                       payload: ["productId": product, "userId": user, "liked": liked, "delta": liked ? 1 : -1])
            return 1
        }
    }

    private func order(_ db: Connection, customer: String, random: inout SplitMix64) async throws -> Int {
        let orderID = "order-\(UUID().uuidString.prefix(8).lowercased())"
        let lines = (1...Int(random.next() % 3 + 1)).map { line in
            (line: line, product: "product-\(random.next() % UInt64(products) + 1)", quantity: Int(random.next() % 3 + 1),
             price: Int(random.next() % 9_000 + 500))
        }
        let completed = random.next() % 100 < 80
        return try await db.transaction { tx in
            let total = lines.reduce(0) { $0 + $1.quantity * $1.price }
            try tx.execute("INSERT INTO orders (id, customer_id, total_cents) VALUES ($1, $2, $3)", [orderID, customer, total])
            for line in lines {
                try tx.execute("INSERT INTO order_lines VALUES ($1, $2, $3, $4, $5)", [orderID, line.line, line.product, line.quantity, line.price])
            }
            try tx.execute("INSERT INTO payments (order_id, status, amount_cents, reason) VALUES ($1, $2, $3, $4)",
                           [orderID, completed ? "completed" : "failed", total, completed ? nil : "card declined"])
            let items: [[String: Any]] = lines.map { ["productId": $0.product, "quantity": $0.quantity, "priceCents": $0.price] }
            if completed {
                try outbox(tx, topic: "order-events", aggregateType: "order", aggregateID: orderID, type: "PaymentCompleted",
                           payload: ["orderId": orderID, "customerId": customer, "amountCents": total, "items": items])
                for line in lines {
                    try outbox(tx, topic: "catalog-events", aggregateType: "product", aggregateID: line.product, type: "ProductSold",
                               payload: ["productId": line.product, "orderId": orderID, "quantity": line.quantity])
                }
                return 1 + lines.count
            }
            try outbox(tx, topic: "order-events", aggregateType: "order", aggregateID: orderID, type: "PaymentFailed",
                       payload: ["orderId": orderID, "customerId": customer, "amountCents": total, "reason": "card declined"])
            return 1
        }
    }
}

/// A small deterministic generator, so a load can be repeated from its seed.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
