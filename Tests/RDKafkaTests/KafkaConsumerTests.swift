import Foundation
import RDKafka
import Synchronization
import TestSupport
import Testing

/// Records the rebalance events a consumer's handler saw.
final class RebalanceLog: Sendable {
    private let events = Mutex<[RebalanceEvent]>([])
    func record(_ event: RebalanceEvent) { events.withLock { $0.append(event) } }
    var all: [RebalanceEvent] { events.withLock { $0 } }
}

@Suite struct KafkaConsumerTests {
    static func produce(_ count: Int, topic: String, partitions: Int32, to cluster: KafkaMockCluster) async throws {
        let deliveries = DeliveryLog()
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": cluster.bootstrapServers]),
                                         log: KafkaTestHelpers.quiet) { deliveries.record($0) }
        for sequence in 0..<count {
            try await producer.send(KafkaRecord(topic: topic, partition: Int32(sequence) % partitions, key: nil,
                                                value: KafkaTestHelpers.bytes("\(sequence)")), token: UInt64(sequence))
        }
        let left = await producer.close(timeout: .seconds(30))
        #expect(left == 0 && deliveries.count == count)
    }

    static func groupProperties(_ cluster: KafkaMockCluster, group: String) -> [String: String] {
        groupProperties(bootstrapServers: cluster.bootstrapServers, group: group)
    }

    static func groupProperties(_ kafka: TestKafka, group: String) -> [String: String] {
        groupProperties(bootstrapServers: kafka.bootstrapServers, group: group)
    }

    static func groupProperties(bootstrapServers: String, group: String) -> [String: String] {
        ["bootstrap.servers": bootstrapServers, "group.id": group, "session.timeout.ms": "6000",
         "heartbeat.interval.ms": "300", "fetch.wait.max.ms": "50"]
    }

    @Test func anAssignmentStartsEachPartitionWhereTheHandlerSays() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        try cluster.createTopic("events", partitions: 2)
        try await Self.produce(200, topic: "events", partitions: 2, to: cluster)
        let log = RebalanceLog()
        let consumer = try KafkaConsumer(properties: Self.groupProperties(cluster, group: "starts"), log: KafkaTestHelpers.quiet) { event in
            log.record(event)
            guard case .assigned(let partitions) = event else { return [:] }
            // Partition 0 resumes at a stored offset; partition 1 is left to auto.offset.reset (earliest).
            return Dictionary(uniqueKeysWithValues: partitions.filter { $0.partition == 0 }.map { ($0, StartOffset.offset(37)) })
        }
        try consumer.subscribe(["events"])
        var records: [ConsumerRecord] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while records.count < 100 + 63, ContinuousClock.now < deadline {
            records += try await consumer.pollOnQueue(maxRecords: 500, timeout: .milliseconds(200))
        }
        let partition0 = records.filter { $0.partition == 0 }.map(\.offset)
        let partition1 = records.filter { $0.partition == 1 }.map(\.offset)
        #expect(partition0.first == 37 && partition0 == Array(37..<100))
        #expect(partition1 == Array(0..<100))
        #expect(log.all.first == .assigned([TopicPartition(topic: "events", partition: 0), TopicPartition(topic: "events", partition: 1)]))
        #expect(try consumer.assignment().count == 2)

        // Offsets committed to Kafka come back from the group coordinator.
        try await consumer.commitOnQueue([TopicPartition(topic: "events", partition: 0): 100])
        let committed = try await consumer.committedOffsets([TopicPartition(topic: "events", partition: 0), TopicPartition(topic: "events", partition: 1)])
        #expect(committed == [TopicPartition(topic: "events", partition: 0): 100])
        try await consumer.close()
        #expect(log.all.last == .revoked([TopicPartition(topic: "events", partition: 0), TopicPartition(topic: "events", partition: 1)], lost: false))
    }

    @Test(arguments: ["range,roundrobin", "cooperative-sticky"])
    func twoMembersOfAGroupSplitThePartitionsAndTheSurvivorTakesOver(strategy: String) async throws {
        // The group protocol, eager and incremental: also on Tansu (TAILGATE_TEST_KAFKA=tansu).
        let cluster = try await TestKafka(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        try await cluster.createTopic("split", partitions: 4)
        let logA = RebalanceLog(), logB = RebalanceLog()
        var properties = Self.groupProperties(cluster, group: "splitters")
        properties["partition.assignment.strategy"] = strategy
        let a = try KafkaConsumer(properties: properties, log: KafkaTestHelpers.quiet) { logA.record($0); return [:] }
        let b = try KafkaConsumer(properties: properties, log: KafkaTestHelpers.quiet) { logB.record($0); return [:] }
        try a.subscribe(["split"])
        try b.subscribe(["split"])
        let split = try await eventuallyPolling([a, b], timeout: .seconds(60)) {
            let (assignedA, assignedB) = (try a.assignment(), try b.assignment())
            return assignedA.count == 2 && assignedB.count == 2 && Set(assignedA).isDisjoint(with: assignedB)
        }
        #expect(split, "each member owns two of the four partitions")
        #expect(logA.all.contains { if case .assigned = $0 { true } else { false } })
        #expect(logB.all.contains { if case .assigned = $0 { true } else { false } })

        // How the split came about depends on timing (both members in the first generation, or one first and the
        // other taking half away later): what is checked is the survivor's side of the other's leaving.
        let beforeLeaving = logA.all.count
        try await b.close()
        #expect(logB.all.last.map { if case .revoked(_, lost: false) = $0 { true } else { false } } == true)
        let tookOver = try await eventuallyPolling([a], timeout: .seconds(60)) { try a.assignment().count == 4 }
        #expect(tookOver, "the remaining member owns all four partitions")
        let takeOver = Array(logA.all.dropFirst(beforeLeaving))
        if strategy == "cooperative-sticky" {
            // Incremental: the survivor keeps its two partitions and is only handed the two that moved.
            #expect(!takeOver.contains { if case .revoked = $0 { true } else { false } }, "\(takeOver)")
            #expect(takeOver.filter { if case .assigned(let partitions) = $0 { partitions.count == 2 } else { false } }.count == 1, "\(takeOver)")
        } else {
            #expect(takeOver.contains { if case .revoked = $0 { true } else { false } }, "\(takeOver)")
        }
        try await a.close()
    }

    @Test func pausedPartitionsDeliverNothingUntilResumed() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        try cluster.createTopic("paused", partitions: 1)
        try await Self.produce(50, topic: "paused", partitions: 1, to: cluster)
        let consumer = try KafkaConsumer(properties: ["bootstrap.servers": cluster.bootstrapServers, "group.id": "p",
                                                      "fetch.wait.max.ms": "50"], log: KafkaTestHelpers.quiet)
        let partition = TopicPartition(topic: "paused", partition: 0)
        try consumer.assign([partition: .offset(10)])
        try consumer.pause([partition])
        var records = try await consumer.pollOnQueue(maxRecords: 100, timeout: .seconds(2))
        #expect(records.isEmpty)
        try consumer.resume([partition])
        records += try await Self.poll(consumer, until: 40, by: .now + .seconds(30))
        #expect(records.map(\.offset) == Array(10..<50))
        try await consumer.close()
        let closed = #expect(throws: KafkaError.self) { try consumer.poll(maxRecords: 1, timeout: .zero) }
        #expect(closed?.kind == .closed)
    }

    @Test func aSeekBackReturnsTheRecordsAgainFromThereAndNothingFetchedBefore() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        try cluster.createTopic("rewind", partitions: 1)
        try await Self.produce(50, topic: "rewind", partitions: 1, to: cluster)
        let consumer = try KafkaConsumer(properties: ["bootstrap.servers": cluster.bootstrapServers, "group.id": "r",
                                                      "fetch.wait.max.ms": "50"], log: KafkaTestHelpers.quiet)
        let partition = TopicPartition(topic: "rewind", partition: 0)
        try consumer.assign([partition: .offset(0)])
        let deadline = ContinuousClock.now + .seconds(30)
        var records = try await Self.poll(consumer, until: 30, by: deadline, takingNoMore: true)
        #expect(records.map(\.offset) == Array(0..<30))
        // The seek waits for the fetcher, so it runs off the concurrency pool; records 30..<50 may be prefetched.
        try await offPool { try consumer.seek([partition: .offset(12)]) }
        records = try await Self.poll(consumer, until: 38, by: deadline)
        #expect(records.map(\.offset) == Array(12..<50), "from the sought offset on, nothing fetched before it")
        let unassigned = TopicPartition(topic: "rewind", partition: 7)
        await #expect(throws: KafkaError.self) { try await offPool { try consumer.seek([unassigned: .offset(0)]) } }
        try await consumer.close()
    }

    /// Polls `consumer` until at least `count` records have arrived or `deadline` passes, returning every record
    /// polled (more than `count` when they came; never more with `takingNoMore`, which leaves the rest unread).
    static func poll(_ consumer: KafkaConsumer, until count: Int, by deadline: ContinuousClock.Instant,
                     takingNoMore: Bool = false) async throws -> [ConsumerRecord] {
        var records: [ConsumerRecord] = []
        while records.count < count, ContinuousClock.now < deadline {
            records += try await consumer.pollOnQueue(maxRecords: takingNoMore ? count - records.count : 100, timeout: .milliseconds(200))
        }
        return records
    }

    /// Polls every consumer (so group protocol and rebalance callbacks make progress) until `condition` holds.
    func eventuallyPolling(_ consumers: [KafkaConsumer], timeout: Duration, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for consumer in consumers { _ = try await consumer.pollOnQueue(maxRecords: 100, timeout: .milliseconds(100)) }
            if try condition() { return true }
        }
        return false
    }
}

@Suite struct KafkaConsumerReachabilityTests {
    @Test func aConsumerReportsHowLongNoBrokerHasBeenReachable() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        try cluster.createTopic("events", partitions: 1)
        let consumer = try KafkaConsumer(properties: KafkaConsumerTests.groupProperties(cluster, group: "reach")
            .merging(["statistics.interval.ms": "200", "reconnect.backoff.max.ms": "200"]) { $1 }, log: KafkaTestHelpers.quiet)
        try consumer.subscribe(["events"])
        func pollAWhile() async throws { _ = try await consumer.pollOnQueue(maxRecords: 10, timeout: .milliseconds(100)) }
        #expect(try await eventually { try await pollAWhile(); return consumer.unreachableFor == nil })
        try cluster.takeBrokerDown(1)
        #expect(try await eventually { try await pollAWhile(); return consumer.unreachableFor != nil }, "the outage shows")
        try cluster.bringBrokerUp(1)
        #expect(try await eventually { try await pollAWhile(); return consumer.unreachableFor == nil }, "and so does its end")
        try await consumer.close()
    }
}

/// A down broker's port stays out of the kernel's automatic choice until the broker is up again, when tests take it
/// down through TestSupport's `takeBrokerDown` (scripts/test sets TAILGATE_RESERVE_MOCK_PORTS=1): otherwise any
/// outgoing connection may take it and the mock aborts the process when it cannot bind it again. The library itself
/// never touches the setting: `setBrokerDown` leaves it alone.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["TAILGATE_RESERVE_MOCK_PORTS"] == "1" && getuid() == 0))
struct MockBrokerPortReservationTests {
    static func reserved() -> [String] {
        ((try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_reserved_ports", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
    }

    @Test func aDownBrokersPortIsReservedUntilItIsUp() throws {
        let cluster = try KafkaMockCluster(brokers: 2, log: KafkaTestHelpers.quiet)
        defer { cluster.close() }
        let second = try #require(cluster.bootstrapServers.split(separator: ",").last?.split(separator: ":").last.map(String.init))
        try cluster.takeBrokerDown(2)
        #expect(Self.reserved().contains(second))
        try cluster.bringBrokerUp(2)
        #expect(!Self.reserved().contains(second))
        try cluster.setBrokerDown(2)
        #expect(!Self.reserved().contains(second), "the library alone changes no machine-wide setting")
        try cluster.setBrokerUp(2)
    }
}
