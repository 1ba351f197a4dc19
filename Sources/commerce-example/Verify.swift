import Foundation
import LibPQ

/// `commerce-example verify`: recomputes the metrics from the commerce database (the source of truth) and compares
/// them with the back office's `product_metrics` and `order_status`.
struct Verify {
    var commerce: String
    var backoffice: String
    var top: Int

    func run() async throws -> Bool {
        let source = try await Connection.connect(commerce)
        let target = try await Connection.connect(backoffice)
        let expected = try await source.query("""
            WITH products AS (
                SELECT product_id FROM product_likes UNION SELECT product_id FROM product_views
                UNION SELECT l.product_id FROM order_lines l JOIN payments p ON p.order_id = l.order_id AND p.status = 'completed')
            SELECT p.product_id,
                   (SELECT count(*) FROM product_likes k WHERE k.product_id = p.product_id AND k.liked)::text AS likes,
                   (SELECT count(*) FROM product_views v WHERE v.product_id = p.product_id)::text AS views,
                   (SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN payments y ON y.order_id = l.order_id AND y.status = 'completed'
                    WHERE l.product_id = p.product_id)::text AS sales
            FROM products p
            """).rows
        let actual = try await target.query("SELECT product_id, like_count::text AS likes, view_count::text AS views, sales_count::text AS sales FROM product_metrics").rows
        var actualByProduct: [String: (String?, String?, String?)] = [:]
        for row in actual { actualByProduct[row["product_id"] ?? ""] = (row["likes"], row["views"], row["sales"]) }
        var differences: [String] = []
        for row in expected {
            let product = row["product_id"] ?? ""
            let want = (row["likes"] ?? "0", row["views"] ?? "0", row["sales"] ?? "0")
            let have = actualByProduct.removeValue(forKey: product) ?? ("0", "0", "0")
            if have.0 != want.0 || have.1 != want.1 || have.2 != want.2 {
                differences.append("\(product): likes \(have.0 ?? "-")/\(want.0) views \(have.1 ?? "-")/\(want.1) sales \(have.2 ?? "-")/\(want.2) (have/expected)")
            }
        }
        for (product, have) in actualByProduct where have != ("0", "0", "0") {
            differences.append("\(product): in product_metrics but not in the commerce database")
        }
        let orders = try await source.query("SELECT order_id, CASE status WHEN 'completed' THEN 'confirmed' ELSE 'cancelled' END AS status FROM payments").rows
        let statuses = Dictionary(uniqueKeysWithValues: try await target.query("SELECT order_id, status FROM order_status").rows.map { ($0["order_id"] ?? "", $0["status"] ?? "") })
        for order in orders where statuses[order["order_id"] ?? ""] != order["status"] {
            differences.append("\(order["order_id"] ?? ""): order_status \(statuses[order["order_id"] ?? ""] ?? "missing"), expected \(order["status"] ?? "")")
        }
        if differences.isEmpty {
            print("verify: OK (\(expected.count) products, \(orders.count) orders)")
        } else {
            print("verify: \(differences.count) difference(s)")
            differences.sorted().forEach { print("  \($0)") }
        }
        if top > 0 {
            print("top products by sales:")
            let rows = try await target.query("SELECT product_id, sales_count, like_count, view_count FROM product_metrics ORDER BY sales_count DESC, product_id LIMIT $1", [top]).rows
            for row in rows {
                print("  \(row["product_id"] ?? "")  sales=\(row["sales_count"] ?? "")  likes=\(row["like_count"] ?? "")  views=\(row["view_count"] ?? "")")
            }
        }
        await source.close()
        await target.close()
        return differences.isEmpty
    }
}
