/// A frame or pgoutput message that could not be decoded.
///
/// It names the message being decoded, the field that failed and the byte offset within the message, so a bad
/// frame can be located in a capture. Decoding never traps: every malformed input becomes one of these.
public struct PGOutputError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Code: Hashable, Sendable {
        /// The input ended before the field was complete.
        case truncated
        /// Bytes were left over after the message was fully decoded.
        case trailingBytes
        /// The message type byte is not one this decoder knows.
        case unknownMessageType
        /// A field held a value the protocol does not allow (a bad tag, a negative length, invalid UTF-8).
        case invalidValue
        /// A row message referred to a relation that no Relation message has described.
        case unknownRelation
    }

    /// What went wrong.
    public var code: Code
    /// The message being decoded, e.g. `Insert` or `XLogData`.
    public var message: String
    /// The field being decoded, e.g. `tuple column 2 length`.
    public var field: String
    /// The byte offset within the message where the field starts.
    public var offset: Int
    /// More detail, e.g. the unexpected byte.
    public var detail: String

    /// Creates an error.
    public init(code: Code, message: String, field: String, offset: Int, detail: String = "") {
        self.code = code
        self.message = message
        self.field = field
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        var text = "cannot decode \(message): \(field) at byte \(offset): "
        switch code {
        case .truncated: text += "input ends early"
        case .trailingBytes: text += "unexpected trailing bytes"
        case .unknownMessageType: text += "unknown message type"
        case .invalidValue: text += "invalid value"
        case .unknownRelation: text += "relation not described by a preceding Relation message"
        }
        if !detail.isEmpty { text += " (\(detail))" }
        return text + "; this is a protocol mismatch or corrupt stream, not something a retry fixes"
    }
}
