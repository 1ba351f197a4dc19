import Foundation
import LibPQ

/// The reference scenario, using only Tailgate's public APIs.
@main
enum CommerceExample {
    static let usage = """
        commerce-example: the commerce scenario around Tailgate.

          commerce-example setup   --postgres CONNINFO [--publication NAME --grant-to ROLE]
                                   create the commerce schema and outbox table; optionally the publication
                                   (inserts on the outbox only) and SELECT on the outbox for the connector's role
          commerce-example api-load --postgres CONNINFO [--rate R] [--events N] [--products P] [--seed S]
                                   business transactions that write their outbox rows (default 500 events/s, 3000 events)
          commerce-example metrics --postgres BACKOFFICE --bootstrap SERVERS [--group product-metrics]
                                   [--metrics-listen HOST:PORT]
                                   the back office: product_metrics and order_status, exactly once (SIGTERM stops);
                                   the consumer's Prometheus metrics at http://HOST:PORT/metrics
          commerce-example verify  --commerce CONNINFO --backoffice CONNINFO [--top N]
                                   recompute the metrics from the commerce database and compare: prints OK or each difference
        """

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard !arguments.isEmpty, !arguments.contains("--help") else {
            print(usage)
            return
        }
        let command = arguments.removeFirst()
        var options: [String: String] = [:]
        while arguments.count >= 2, arguments[0].hasPrefix("--") {
            options[String(arguments.removeFirst().dropFirst(2))] = arguments.removeFirst()
        }
        func required(_ name: String) -> String {
            guard let value = options[name] else {
                FileHandle.standardError.write(Data("commerce-example \(command): --\(name) is required\n".utf8))
                exit(64)
            }
            return value
        }
        do {
            switch command {
            case "setup":
                let db = try await Connection.connect(required("postgres"))
                for statement in CommerceSchema.statements { try await db.execute(statement) }
                if let role = options["grant-to"] {
                    try await db.execute("GRANT SELECT ON outbox_event TO \(SQLIdentifier.quote(role))")
                }
                if let publication = options["publication"],
                   try await db.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [publication]).rows.isEmpty {
                    try await db.execute("CREATE PUBLICATION \(SQLIdentifier.quote(publication)) FOR TABLE outbox_event WITH (publish = 'insert')")
                }
                await db.close()
                print("setup: commerce schema ready")
            case "api-load":
                try await APILoad(postgres: required("postgres"), rate: Int(options["rate"] ?? "") ?? 500,
                                  events: Int(options["events"] ?? "") ?? 3_000, products: Int(options["products"] ?? "") ?? 100,
                                  seed: UInt64(options["seed"] ?? "") ?? 42).run()
            case "metrics":
                try await MetricsService(postgres: required("postgres"), bootstrap: required("bootstrap"),
                                         group: options["group"] ?? "product-metrics", metricsListen: options["metrics-listen"]).run()
            case "verify":
                let ok = try await Verify(commerce: required("commerce"), backoffice: required("backoffice"),
                                          top: Int(options["top"] ?? "") ?? 0).run()
                exit(ok ? 0 : 1)
            default:
                FileHandle.standardError.write(Data("commerce-example: unknown command '\(command)'\n\(usage)\n".utf8))
                exit(64)
            }
        } catch {
            FileHandle.standardError.write(Data("commerce-example \(command): \(error)\n".utf8))
            exit(1)
        }
    }
}
