import ConsumerSchema
import Foundation
import LibPQ
import RDKafka

extension ConsumerGroupStatus {
    /// The tables a consumer database keeps, as `OutboxConsumer` defines them.
    package typealias Tables = ConsumerTables

    /// Reads every consumer group recorded in a consumer database and compares its stored offsets with Kafka's end
    /// offsets. Changes nothing, in the database or in Kafka.
    ///
    /// - Parameters:
    ///   - conninfo: The consumer database.
    ///   - kafka: librdkafka properties for the cluster the groups read (`bootstrap.servers`, TLS…).
    ///   - tables: The consumer's table names.
    ///   - topics: Topics every group reads, besides those it stored offsets for: a topic a group never applied a
    ///     record of has no row in the offsets table, yet its records wait too.
    ///   - timeout: How long each request to Kafka may take.
    /// - Returns: One entry per group, by name. Kafka's failure is recorded in each group's ``kafkaError``.
    /// - Throws: ``PostgresError`` when the database cannot be reached or has no offsets table.
    package static func read(conninfo: String, kafka: [String: String], tables: Tables = .defaults, topics extraTopics: [String] = [],
                            timeout: Duration = .seconds(10)) async throws -> [ConsumerGroupStatus] {
        let db = try await Connection.connect(conninfo)
        let offsets: QueryResult
        let deadLettered: QueryResult?
        let parked: QueryResult?
        do {
            offsets = try await db.query("""
                SELECT consumer_group, topic, partition::text AS partition, next_offset::text AS next_offset,
                       extract(epoch FROM updated_at)::text AS updated_at
                FROM \(SQLIdentifier.quoteQualified(tables.offsets)) ORDER BY consumer_group, topic, partition
                """)
            let inboxExists = try await db.query("SELECT to_regclass($1) IS NOT NULL AS present",
                                                 [SQLIdentifier.quoteQualified(tables.inbox)]).first?.bool("present") == true
            deadLettered = inboxExists ? try await db.query("""
                SELECT consumer_group, count(*)::text AS dead_lettered FROM \(SQLIdentifier.quoteQualified(tables.inbox))
                WHERE status = \(Tables.InboxStatus.deadLettered.literal) GROUP BY consumer_group
                """) : nil
            // A parked key: one (topic, partition, key) with events waiting behind its first failure.
            let parkedExists = try await db.query("SELECT to_regclass($1) IS NOT NULL AS present",
                                                  [SQLIdentifier.quoteQualified(tables.parked)]).first?.bool("present") == true
            parked = parkedExists ? try await db.query("""
                SELECT consumer_group, count(DISTINCT (topic, partition, record_key))::text AS keys
                FROM \(SQLIdentifier.quoteQualified(tables.parked)) GROUP BY consumer_group
                """) : nil
        } catch {
            await db.close()
            throw error
        }
        await db.close()

        var groups: [String: [Partition]] = [:]
        for row in offsets.rows {
            guard let group = row["consumer_group"], let topic = row["topic"], let partition = row["partition"].flatMap({ Int32($0) }) else { continue }
            groups[group, default: []].append(Partition(
                topic: topic, partition: partition, storedOffset: row["next_offset"].flatMap { Int64($0) },
                updatedAt: row["updated_at"].flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) }))
        }
        var deadLetteredByGroup: [String: Int] = [:]
        for row in deadLettered?.rows ?? [] {
            if let group = row["consumer_group"] { deadLetteredByGroup[group] = row.int("dead_lettered") ?? 0 }
        }
        var parkedByGroup: [String: Int] = [:]
        for row in parked?.rows ?? [] {
            if let group = row["consumer_group"] { parkedByGroup[group] = row.int("keys") ?? 0 }
        }
        for group in Set(deadLetteredByGroup.keys).union(parkedByGroup.keys) where groups[group] == nil { groups[group] = [] }

        // Kafka's end of every partition of every topic a group stored an offset for, once per topic.
        let topics = Set(groups.values.flatMap { $0.map(\.topic) } + (groups.isEmpty ? [] : extraTopics)).sorted()
        var ends: [TopicPartition: KafkaWatermarks.Offsets] = [:]
        var kafkaError: String?
        if !topics.isEmpty {
            do {
                let watermarks = try KafkaWatermarks(properties: kafka, log: { _ in })
                for topic in topics { ends.merge(try await watermarks.offsets(topic: topic, timeout: timeout)) { $1 } }
            } catch {
                kafkaError = "\(error)"
            }
        }
        let masked = ConnectorConfiguration.mask(conninfo)
        return groups.keys.sorted().map { group in
            var partitions = groups[group] ?? []
            // Partitions of the group's topics it never stored an offset for still count: their records wait too.
            let known = Set(partitions.map { TopicPartition(topic: $0.topic, partition: $0.partition) })
            let groupTopics = Set(partitions.map(\.topic) + extraTopics)
            for (topicPartition, _) in ends where groupTopics.contains(topicPartition.topic) && !known.contains(topicPartition) {
                partitions.append(Partition(topic: topicPartition.topic, partition: topicPartition.partition))
            }
            for index in partitions.indices {
                let end = ends[TopicPartition(topic: partitions[index].topic, partition: partitions[index].partition)]
                partitions[index].endOffset = end?.high
                partitions[index].startOffset = end?.low
            }
            partitions.sort { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
            return ConsumerGroupStatus(database: masked, group: group, partitions: partitions,
                                       deadLettered: deadLetteredByGroup[group] ?? 0,
                                       parked: parked == nil ? nil : parkedByGroup[group] ?? 0,
                                       kafkaError: kafkaError)
        }
    }
}
