/// Decodes a session's pgoutput messages in order, tracking what a single message cannot know alone.
///
/// It knows whether a message sits inside a Stream Start / Stream Stop block (where change messages carry an
/// xid) and keeps the ``RelationCache`` up to date. It does no I/O.
public struct PGOutputDecoder: Sendable {
    /// The tables described so far in this session.
    public private(set) var relations = RelationCache()
    /// Whether the last message opened a stream block that has not been closed yet.
    public private(set) var inStreamBlock = false

    /// Creates a decoder for a new replication session.
    public init() {}

    /// Decodes the next message of the session.
    ///
    /// - Throws: ``PGOutputError``; also for a Stream Start inside a block or a Stream Stop outside one.
    public mutating func decode(_ bytes: [UInt8]) throws(PGOutputError) -> PGOutputMessage {
        let message = try PGOutputMessage.decode(bytes, inStream: inStreamBlock)
        switch message {
        case .relation(let relation):
            relations.update(relation)
        case .streamStart:
            guard !inStreamBlock else {
                throw PGOutputError(code: .invalidValue, message: "Stream Start", field: "message type", offset: 0,
                                    detail: "a stream block is already open")
            }
            inStreamBlock = true
        case .streamStop:
            guard inStreamBlock else {
                throw PGOutputError(code: .invalidValue, message: "Stream Stop", field: "message type", offset: 0,
                                    detail: "no stream block is open")
            }
            inStreamBlock = false
        default:
            break
        }
        return message
    }

    /// Names the values of `tuple` with the columns of relation `relationID`; see ``RelationCache/row(relationID:tuple:messageName:)``.
    public func row(relationID: UInt32, tuple: TupleData, messageName: String = "row") throws(PGOutputError) -> Row {
        try relations.row(relationID: relationID, tuple: tuple, messageName: messageName)
    }
}
