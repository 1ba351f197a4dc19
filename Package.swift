// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Tailgate",
    products: [
        .library(name: "PGOutput", targets: ["PGOutput"]),
        .library(name: "LibPQ", targets: ["LibPQ"]),
        .library(name: "RDKafka", targets: ["RDKafka"]),
        .library(name: "Observability", targets: ["Observability"]),
        .library(name: "OutboxConnector", targets: ["OutboxConnector"]),
        .library(name: "OutboxConsumer", targets: ["OutboxConsumer"]),
        .executable(name: "tailgate", targets: ["tailgate"]),
        .executable(name: "commerce-example", targets: ["commerce-example"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CLibRDKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .target(name: "PGOutput"),
        .target(name: "LibPQ", dependencies: ["CLibPQ", "PGOutput"]),
        .target(name: "RDKafka", dependencies: ["CLibRDKafka", "Observability"]),
        // Logging, Prometheus text, the /metrics server and shutdown signals, for the connector, consumer and CLI.
        .target(name: "Observability"),
        // What the connector and the consumer both run on: the stop signal, the backoff, the SQLSTATE
        // classification table, the stall detector. Package-internal: not a product.
        .target(name: "ServiceRuntime", dependencies: ["LibPQ"]),
        // The consumer's tables (names, definitions), which OutboxConsumer creates and `tailgate status` reads.
        // Package-internal: not a product.
        .target(name: "ConsumerSchema", dependencies: ["LibPQ"]),
        .target(name: "OutboxConnector", dependencies: ["LibPQ", "PGOutput", "RDKafka", "Observability", "ServiceRuntime", "ConsumerSchema"]),
        .target(name: "OutboxConsumer", dependencies: ["LibPQ", "RDKafka", "Observability", "ServiceRuntime", "ConsumerSchema"]),
        .executableTarget(name: "tailgate", dependencies: ["OutboxConnector", "OutboxConsumer", "RDKafka", "LibPQ", "PGOutput", "Observability"]),
        .executableTarget(name: "commerce-example", dependencies: ["LibPQ", "OutboxConsumer", "Observability"]),
        // The contenders scripts/bench compares (connector, null sink, polling relay, consumers); not a product.
        .executableTarget(name: "tailgate-bench", dependencies: ["OutboxConnector", "OutboxConsumer", "RDKafka", "LibPQ", "Observability"]),
        // Test-only helpers (throwaway PostgreSQL clusters, child processes); never linked into products.
        .target(name: "TestSupport", dependencies: ["LibPQ", "RDKafka"], path: "Tests/TestSupport"),
        .testTarget(name: "PGOutputTests", dependencies: ["PGOutput"], resources: [.copy("Fixtures")]),
        .testTarget(name: "LibPQTests", dependencies: ["LibPQ", "PGOutput", "TestSupport"]),
        .testTarget(name: "RDKafkaTests", dependencies: ["RDKafka", "TestSupport"]),
        .testTarget(name: "OutboxConnectorTests", dependencies: ["OutboxConnector", "OutboxConsumer", "Observability", "TestSupport"], resources: [.copy("BadConfigs")]),
        .testTarget(name: "OutboxConsumerTests", dependencies: ["OutboxConsumer", "Observability", "ServiceRuntime", "TestSupport"]),
        .testTarget(name: "ServiceRuntimeTests", dependencies: ["ServiceRuntime", "LibPQ", "TestSupport"]),
        .testTarget(name: "ObservabilityTests", dependencies: ["Observability", "TestSupport"]),
        // A child process for signal and metrics-server tests (Observability only).
        .executableTarget(name: "ObservabilityProbe", dependencies: ["Observability"], path: "Tests/ObservabilityProbe"),
        // A child process for consumer crash tests.
        .executableTarget(name: "LedgerConsumer", dependencies: ["OutboxConsumer", "Observability"], path: "Tests/LedgerConsumer"),
        // Reads topics back for scripts/chaos (event ids, duplicates included).
        .executableTarget(name: "KafkaDump", dependencies: ["RDKafka", "TestSupport"], path: "Tests/KafkaDump"),
        // Takes a mock broker down and up while spawning children: the mock's abort, isolated in a process.
        .executableTarget(name: "MockRebindProbe", dependencies: ["RDKafka", "TestSupport"], path: "Tests/MockRebindProbe"),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
