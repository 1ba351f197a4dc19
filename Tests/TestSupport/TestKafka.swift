import Foundation
import RDKafka

/// The Kafka an end-to-end test runs against: librdkafka's mock cluster, or with `TAILGATE_TEST_KAFKA=tansu` a
/// Tansu broker (``TansuBroker``), a second implementation of the protocol.
///
/// The fault controls (``setBrokerDown(_:)``, ``pushRequestErrors(apiKey:errors:)`` …) exist only on the mock: a test
/// that uses them is marked `.enabled(if: TestKafka.mockControlsUnavailableReason == nil, …)` and skipped on Tansu.
public final class TestKafka: Sendable {
    /// Which broker implementation the tests run against.
    public enum Kind: String, Sendable {
        /// librdkafka's in-process mock cluster (the default).
        case mock
        /// A Tansu broker process (`TAILGATE_TEST_KAFKA=tansu`, `TG_TANSU_BIN`).
        case tansu
    }

    /// `TAILGATE_TEST_KAFKA`: `tansu`, or the mock for anything else.
    public static let kind: Kind = ProcessInfo.processInfo.environment["TAILGATE_TEST_KAFKA"] == "tansu" ? .tansu : .mock

    /// Why a test that needs the mock cluster's fault controls cannot run here, or `nil` when it can.
    public static var mockControlsUnavailableReason: String? {
        kind == .mock ? nil
            : "needs the librdkafka mock cluster's fault controls (broker down/up, injected errors); TAILGATE_TEST_KAFKA=tansu runs one real broker"
    }

    /// Why a test that needs ListOffsets' log end offset (`tailgate status`'s end offsets and lag) cannot run here,
    /// or `nil` when it can.
    ///
    /// Tansu 0.6.0 answers ListOffsets(latest) with the base offset of the partition's last record batch plus one, not
    /// the log end offset: after batches of 2, 3 and 4 records (offsets 0…8) it says 6, while its Fetch replies say 9.
    public static var listOffsetsUnavailableReason: String? {
        kind == .mock ? nil
            : "needs ListOffsets(latest) to return the log end offset; Tansu 0.6.0 returns the last record batch's base offset + 1"
    }

    private enum Backend {
        case mock(KafkaMockCluster)
        case tansu(TansuBroker)
    }

    private let backend: Backend

    /// Starts the broker(s): a mock cluster of `brokers` brokers, or one Tansu broker whatever `brokers` says.
    ///
    /// - Throws: ``KafkaError`` from the mock, ``TestPostgresError`` when Tansu does not start.
    public init(brokers: Int, log: @escaping KafkaLogHandler = mockClusterLog) async throws {
        switch Self.kind {
        // Off the concurrency pool, like everything below that waits for the mock's thread (a loaded machine
        // delays it, and a test blocked on one of the pool's two threads holds back every other test).
        case .mock: backend = .mock(try await offPool { try KafkaMockCluster(brokers: brokers, log: log) })
        case .tansu: backend = .tansu(try await TansuBroker())
        }
    }

    /// The `bootstrap.servers` value for clients.
    public var bootstrapServers: String {
        switch backend {
        case .mock(let cluster): cluster.bootstrapServers
        case .tansu(let broker): broker.bootstrapServers
        }
    }

    /// Creates a topic with `partitions` partitions.
    ///
    /// - Throws: ``KafkaError`` from the mock, ``TestPostgresError`` with Tansu's output.
    public func createTopic(_ name: String, partitions: Int) async throws {
        let backend = backend
        try await offPool {
            switch backend {
            case .mock(let cluster): try cluster.createTopic(name, partitions: partitions)
            case .tansu(let broker): try broker.createTopic(name, partitions: partitions)
            }
        }
    }

    /// The mock cluster, for its fault controls.
    ///
    /// - Throws: ``TestPostgresError`` on Tansu (the test should have been skipped: see ``mockControlsUnavailableReason``).
    private func mock() throws -> KafkaMockCluster {
        guard case .mock(let cluster) = backend else {
            throw TestPostgresError(message: "this test uses the mock cluster's fault controls: mark it "
                                        + ".enabled(if: TestKafka.mockControlsUnavailableReason == nil, …)")
        }
        return cluster
    }

    /// The mock's `takeBrokerDown` (Tests/TestSupport/ReservedPorts.swift): down, its port kept out of automatic choice.
    public func takeBrokerDown(_ id: Int32) throws { try mock().takeBrokerDown(id) }

    /// The mock's `bringBrokerUp`: up again, its port released.
    public func bringBrokerUp(_ id: Int32) throws { try mock().bringBrokerUp(id) }

    /// The mock's ``KafkaMockCluster/pushRequestErrors(apiKey:errors:)``.
    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) throws { try mock().pushRequestErrors(apiKey: apiKey, errors: errors) }

    /// Stops the broker(s).
    public func close() {
        switch backend {
        // Destroying the mock joins its threads (up to a second on a busy machine): not on the concurrency pool,
        // where a test's `defer` runs it.
        case .mock(let cluster): DispatchQueue(label: "tailgate.test.mock-close").async { cluster.close() }
        case .tansu(let broker): broker.close()
        }
    }
}
