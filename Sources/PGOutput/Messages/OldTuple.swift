/// The old row sent with an Update or Delete: only its key columns, or all of it.
public struct OldTuple: Hashable, Sendable {
    /// Which form the server sent.
    public enum Kind: Hashable, Sendable {
        /// Key columns only (`K`); the others are null.
        case key
        /// The whole row (`O`, with `REPLICA IDENTITY FULL`).
        case full
    }

    /// Which form the server sent.
    public var kind: Kind
    /// The values.
    public var tuple: TupleData

    /// Creates an old tuple.
    public init(kind: Kind, tuple: TupleData) {
        self.kind = kind
        self.tuple = tuple
    }
}
