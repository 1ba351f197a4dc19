import Foundation
import LibPQ

/// Lists parked keys and requests their release (`tailgate parked list|release`).
///
/// Under ``ConsumerConfiguration/PoisonPolicy/parkKey`` an event whose handler cannot succeed parks its key: the
/// event and every later one with that key on that partition wait in the service's database (see the table in the
/// README, or ``ConsumerConfiguration/parkedTable``) while other keys flow. After fixing the handler, request a
/// release: the consumer that owns the partition applies the key's parked events in their original order, exactly
/// once, in one transaction (a crash during the release changes nothing), and the key flows again. If an event fails
/// again, the release stops there and it heads the key with the new error.
public struct ParkedKeys: Sendable {
    /// One parked key.
    public struct Entry: Sendable, Hashable {
        /// The consumer group.
        public var group: String
        /// The topic.
        public var topic: String
        /// The partition.
        public var partition: Int32
        /// The record key as text (`event:<id>` for a record without a key).
        public var key: String
        /// How many events are parked under it.
        public var events: Int
        /// The offset and event id of the first one, the one that failed.
        public var firstOffset: Int64
        /// The first parked event's id.
        public var firstEventID: String
        /// Why it was parked.
        public var error: String?
        /// How long ago the first event was parked, in seconds.
        public var ageSeconds: Double
        /// Whether a release was requested and not yet carried out.
        public var releaseRequested: Bool
    }

    /// The consumer service's database.
    public var postgres: String
    /// The parked-events table.
    public var table: String

    /// Creates a reader for the parked-events table in `postgres`.
    public init(postgres: String, table: String = "tailgate_parked") {
        self.postgres = postgres
        self.table = table
    }

    private func quotedTable() throws -> String {
        guard let name = QualifiedName(parsing: table) else { throw ConsumerError("table '\(table)' is not a table name; write e.g. tailgate_parked") }
        return SQLIdentifier.quoteQualified(name)
    }

    /// The parked keys, oldest first.
    ///
    /// - Parameter group: Only this consumer group's, or every group's.
    /// - Throws: ``PostgresError``, ``ConsumerError`` for a bad table name.
    public func list(group: String? = nil) async throws -> [Entry] {
        let table = try quotedTable()
        let database = try await Connection.connect(postgres)
        defer { Task { await database.close() } }
        let rows = try await database.query("""
            SELECT consumer_group, topic, partition::text AS partition, record_key, count(*)::text AS events,
                   min("offset")::text AS first_offset,
                   (array_agg(event_id ORDER BY "offset"))[1] AS first_event_id,
                   (array_agg(error ORDER BY "offset"))[1] AS error,
                   extract(epoch FROM now() - min(parked_at))::text AS age,
                   bool_or(release_requested_at IS NOT NULL)::text AS requested
            FROM \(table) WHERE $1::text IS NULL OR consumer_group = $1
            GROUP BY consumer_group, topic, partition, record_key
            ORDER BY min(parked_at), topic, partition, record_key
            """, [group]).rows
        return rows.map { row in
            Entry(group: row["consumer_group"] ?? "", topic: row["topic"] ?? "", partition: row["partition"].flatMap { Int32($0) } ?? -1,
                  key: row["record_key"] ?? "", events: row.int("events") ?? 0, firstOffset: row["first_offset"].flatMap { Int64($0) } ?? -1,
                  firstEventID: row["first_event_id"] ?? "", error: row["error"], ageSeconds: row["age"].flatMap { Double($0) } ?? 0,
                  releaseRequested: row["requested"] == "true")
        }
    }

    /// Asks the consumer that owns the partition to apply the key's parked events (within a second or so while it
    /// runs; at its next start otherwise).
    ///
    /// - Returns: How many parked events the request covers (0: nothing parked under that key).
    /// - Throws: ``PostgresError``, ``ConsumerError`` for a bad table name.
    @discardableResult
    public func requestRelease(group: String, topic: String, partition: Int32, key: String) async throws -> Int {
        let table = try quotedTable()
        let database = try await Connection.connect(postgres)
        defer { Task { await database.close() } }
        return try await database.execute("""
            UPDATE \(table) SET release_requested_at = now()
            WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND record_key = $4
            """, [group, topic, Int(partition), key])
    }
}
