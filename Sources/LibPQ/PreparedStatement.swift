/// A statement that each connection prepares once, on its first use there, and afterwards runs by name: the server
/// parses and plans its text once per connection instead of on every execution.
///
/// The name is derived from the SQL text, so two values with the same text share one server-side statement and
/// different texts never collide. A new connection (after a reconnect) prepares it again on first use.
///
/// ```swift
/// let claim = PreparedStatement("INSERT INTO seen (id) VALUES ($1) ON CONFLICT DO NOTHING")
/// try session.execute(claim, [eventID])
/// ```
public struct PreparedStatement: Hashable, Sendable {
    /// The statement's SQL text, with `$1`, `$2`, … for its parameters.
    public let sql: String
    /// The server-side name, `tailgate_` followed by a hash of ``sql``.
    public let name: String

    /// Creates a prepared statement for `sql` (nothing is sent until it is first run).
    ///
    /// - Parameter sql: One statement; `$1`, `$2`, … refer to the parameters of each execution.
    public init(_ sql: String) {
        self.sql = sql
        // FNV-1a, 64 bits: stable across processes (Swift's Hasher is seeded per process) and cheap.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        self.name = "tailgate_" + String(hash, radix: 16)
    }
}
