/// One message of PostgreSQL's built-in `pgoutput` logical decoding plugin, protocol versions 1 and 2.
///
/// Decode with ``decode(_:inStream:)``, or with a ``PGOutputDecoder``, which tracks stream blocks and relations.
public enum PGOutputMessage: Hashable, Sendable {
    /// The first byte of each message.
    public enum ID: UInt8, Hashable, Sendable {
        case begin = 66 // 'B'
        case commit = 67 // 'C'
        case origin = 79 // 'O'
        case relation = 82 // 'R'
        case type = 89 // 'Y'
        case insert = 73 // 'I'
        case update = 85 // 'U'
        case delete = 68 // 'D'
        case truncate = 84 // 'T'
        case message = 77 // 'M'
        case streamStart = 83 // 'S'
        case streamStop = 69 // 'E'
        case streamCommit = 99 // 'c'
        case streamAbort = 65 // 'A'

        /// The protocol's name for the message, used in errors.
        public var name: String {
            switch self {
            case .begin: "Begin"
            case .commit: "Commit"
            case .origin: "Origin"
            case .relation: "Relation"
            case .type: "Type"
            case .insert: "Insert"
            case .update: "Update"
            case .delete: "Delete"
            case .truncate: "Truncate"
            case .message: "Message"
            case .streamStart: "Stream Start"
            case .streamStop: "Stream Stop"
            case .streamCommit: "Stream Commit"
            case .streamAbort: "Stream Abort"
            }
        }
    }

    case begin(Begin)
    case commit(Commit)
    case origin(Origin)
    case relation(Relation)
    case type(TypeMessage)
    case insert(Insert)
    case update(Update)
    case delete(Delete)
    case truncate(Truncate)
    case message(LogicalMessage)
    case streamStart(StreamStart)
    case streamStop
    case streamCommit(StreamCommit)
    case streamAbort(StreamAbort)

    /// Decodes one message: the whole `data` of an XLogData frame.
    ///
    /// - Parameters:
    ///   - bytes: The message, starting with its type byte.
    ///   - inStream: Whether the message sits between Stream Start and Stream Stop, where change messages carry an
    ///     xid after the type byte (protocol 2).
    /// - Throws: ``PGOutputError`` for an empty, unknown, truncated or overlong message; every byte must be used.
    public static func decode(_ bytes: [UInt8], inStream: Bool = false) throws(PGOutputError) -> PGOutputMessage {
        var header = WireReader(bytes, messageName: "pgoutput message")
        let tag = try header.readUInt8("message type")
        guard let id = ID(rawValue: tag) else {
            let printable = (32..<127).contains(tag) ? " '\(Character(Unicode.Scalar(tag)))'" : ""
            throw header.error(.unknownMessageType, field: "message type", at: 0, detail: "byte \(tag)\(printable)")
        }
        var reader = WireReader(bytes, offset: 1, messageName: id.name)
        let message: PGOutputMessage
        switch id {
        case .begin: message = .begin(try Begin.decode(from: &reader))
        case .commit: message = .commit(try Commit.decode(from: &reader))
        case .origin: message = .origin(try Origin.decode(from: &reader))
        case .relation: message = .relation(try Relation.decode(from: &reader, inStream: inStream))
        case .type: message = .type(try TypeMessage.decode(from: &reader, inStream: inStream))
        case .insert: message = .insert(try Insert.decode(from: &reader, inStream: inStream))
        case .update: message = .update(try Update.decode(from: &reader, inStream: inStream))
        case .delete: message = .delete(try Delete.decode(from: &reader, inStream: inStream))
        case .truncate: message = .truncate(try Truncate.decode(from: &reader, inStream: inStream))
        case .message: message = .message(try LogicalMessage.decode(from: &reader, inStream: inStream))
        case .streamStart: message = .streamStart(try StreamStart.decode(from: &reader))
        case .streamStop: message = .streamStop
        case .streamCommit: message = .streamCommit(try StreamCommit.decode(from: &reader))
        case .streamAbort: message = .streamAbort(try StreamAbort.decode(from: &reader))
        }
        try reader.expectEnd()
        return message
    }

    /// The message's type.
    public var id: ID {
        switch self {
        case .begin: .begin
        case .commit: .commit
        case .origin: .origin
        case .relation: .relation
        case .type: .type
        case .insert: .insert
        case .update: .update
        case .delete: .delete
        case .truncate: .truncate
        case .message: .message
        case .streamStart: .streamStart
        case .streamStop: .streamStop
        case .streamCommit: .streamCommit
        case .streamAbort: .streamAbort
        }
    }
}
