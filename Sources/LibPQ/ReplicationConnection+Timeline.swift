import PGOutput

extension ReplicationConnection {
    /// Where one timeline ended and the next began: a promotion (failover) or a point-in-time recovery.
    public struct TimelineSwitch: Hashable, Sendable {
        /// The timeline that ended.
        public var timeline: Int
        /// The first position that belongs to the next timeline: WAL before it is shared, WAL after it differs.
        public var switchPoint: LSN
    }

    /// The history of `timeline` (`TIMELINE_HISTORY`): every switch that led to it, oldest first.
    ///
    /// - Throws: ``PostgresError``; the server refuses timeline 1, which has no history.
    public func timelineHistory(_ timeline: Int) async throws(PostgresError) -> [TimelineSwitch] {
        let result = try await simpleQuery("TIMELINE_HISTORY \(timeline)")
        guard let content = result.first?["content"] else {
            throw PostgresError(code: .protocolViolation, message: "TIMELINE_HISTORY returned \(result.columns)")
        }
        return Self.parseTimelineHistory(Self.textOfBytea(content))
    }

    /// The position where `from` ended on the way to `timeline`, or `nil` when `from` is not among its ancestors.
    ///
    /// - Throws: ``PostgresError``.
    public func timelineSwitchPoint(from: Int, into timeline: Int) async throws(PostgresError) -> LSN? {
        guard timeline > 1 else { return nil }
        return try await timelineHistory(timeline).first { $0.timeline == from }?.switchPoint
    }

    /// Parses a history file: `parentTLI<TAB>switchpoint<TAB>reason` per line; comments and blank lines skipped.
    static func parseTimelineHistory(_ text: String) -> [TimelineSwitch] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2, !line.hasPrefix("#"), let parent = Int(fields[0]), let point = LSN(String(fields[1])) else {
                return nil
            }
            return TimelineSwitch(timeline: parent, switchPoint: point)
        }
    }

    /// A `bytea` column in text form (`\x` and hex digits, PostgreSQL's default output) as UTF-8 text.
    static func textOfBytea(_ value: String) -> String {
        guard let bytes = ByteaText.decode(value.utf8) else { return value }
        return String(decoding: bytes, as: UTF8.self)
    }
}
