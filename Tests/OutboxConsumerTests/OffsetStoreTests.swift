import LibPQ
@testable import OutboxConsumer
import RDKafka
import Testing

@Suite struct OffsetStoreTests {
    let store = OffsetStore(table: QualifiedName(parsing: "tailgate_offsets")!, group: "svc", defaultStart: .beginning)
    let p0 = TopicPartition(topic: "events", partition: 0)
    let p1 = TopicPartition(topic: "events", partition: 1)
    let p2 = TopicPartition(topic: "other", partition: 0)

    func record(_ partition: TopicPartition, _ offset: Int64) -> ConsumerRecord {
        ConsumerRecord(topic: partition.topic, partition: partition.partition, offset: offset, key: nil, value: nil, headers: [], timestampMilliseconds: nil)
    }

    @Test func theNextOffsetIsOnePastTheHighestInTheBatchWhateverTheOrder() {
        let next = OffsetStore.nextOffsets(after: [record(p0, 7), record(p1, 3), record(p0, 5), record(p0, 9), record(p2, 0)])
        #expect(next == [p0: 10, p1: 4, p2: 1])
        #expect(OffsetStore.nextOffsets(after: []).isEmpty)
    }

    @Test func anAssignedPartitionStartsAtItsStoredOffsetOrTheDefault() {
        let starts = store.startOffsets(for: [p0, p1], stored: [p0: 42])
        #expect(starts == [p0: .offset(42), p1: .beginning])
        let fromEnd = OffsetStore(table: QualifiedName(parsing: "o")!, group: "g", defaultStart: .end)
        #expect(fromEnd.startOffsets(for: [p1], stored: [:]) == [p1: .end])
    }

    @Test func withoutTheDatabaseEveryPartitionStartsAtKafkasCommittedCopy() {
        // Even a partition the default would start at the beginning: the mirror is never ahead of the database.
        #expect(store.startOffsets(for: [p0, p1], stored: nil) == [p0: .committed, p1: .committed])
    }

    @Test func aPartitionGoesBackOnlyWhereTheDatabaseHoldsLessThanThisMemberKnew() {
        // p0 lost commits (40 < 50), p1 holds what was known, p2 holds more (another member moved it on), and a
        // partition the member knew nothing about is left alone.
        let p3 = TopicPartition(topic: "other", partition: 1)
        #expect(store.rewinds(known: [p0: 50, p1: 30, p2: 10], stored: [p0: 40, p1: 30, p2: 12, p3: 5]) == [p0: .offset(40)])
        #expect(store.rewinds(known: [:], stored: [p0: 1]).isEmpty)
    }

    @Test func aPartitionWhoseStoredOffsetIsGoneGoesBackToTheDefaultStart() {
        #expect(store.rewinds(known: [p0: 50], stored: [:]) == [p0: .beginning])
        let fromEnd = OffsetStore(table: QualifiedName(parsing: "o")!, group: "g", defaultStart: .end)
        #expect(fromEnd.rewinds(known: [p0: 50], stored: [:]) == [p0: .end])
    }
}
