import Foundation

/// How an outbox row fills the CloudEvents attributes of a record in the Kafka protocol binding's binary mode.
///
/// Configured by `"format": "cloudevents"` and the `cloudEvents` object of a connector file. The record keeps its key
/// (the aggregate key) and value (the payload); the attributes travel as `ce_`-prefixed headers: `ce_specversion`
/// (`1.0`), `ce_id` (the event id), `ce_source` (``source``), `ce_type` (``typeColumn``), `ce_time` (the
/// transaction's commit time, RFC 3339), `ce_subject` (``subjectColumn``, when set and not NULL) and `content-type`
/// (from the payload column's type).
public struct CloudEventsMapping: Sendable, Equatable {
    /// The `ce_source` URI reference; with ``sourceColumn``, `${value}` in it is replaced by that column's value,
    /// percent-encoded.
    public var source: String
    /// The column whose value fills `${value}` in ``source``; `nil` for a fixed source.
    public var sourceColumn: String?
    /// The column holding the event type (`ce_type`).
    public var typeColumn: String
    /// The column holding the subject (`ce_subject`); `nil` for none.
    public var subjectColumn: String?

    /// The CloudEvents specification version written in `ce_specversion`.
    public static let specVersion = "1.0"

    /// Creates a mapping.
    public init(source: String, sourceColumn: String? = nil, typeColumn: String, subjectColumn: String? = nil) {
        self.source = source
        self.sourceColumn = sourceColumn
        self.typeColumn = typeColumn
        self.subjectColumn = subjectColumn
    }

    /// The columns the mapping reads.
    var columns: [String] { [sourceColumn, typeColumn, subjectColumn].compactMap { $0 } }

    /// `ce_source` for a row whose source column holds `value` (ignored for a fixed source).
    func source(value: String?) -> String? {
        guard sourceColumn != nil else { return source }
        guard let value, !value.isEmpty,
              let encoded = value.addingPercentEncoding(withAllowedCharacters: Self.unreserved) else { return nil }
        return source.replacingOccurrences(of: "${value}", with: encoded)
    }

    /// The `content-type` for a payload column of type `typeOID` (json, jsonb: JSON; bytea: bytes; others are
    /// published as their text).
    static func contentType(payloadTypeOID typeOID: UInt32) -> String {
        switch typeOID {
        case 114, 3802: "application/json"
        case 17: "application/octet-stream"
        default: "text/plain; charset=utf-8"
        }
    }

    /// RFC 3986 unreserved characters: a column value substituted into the source keeps only these unencoded.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Why `text` is not an RFC 3986 URI reference (characters outside the grammar, a bad `%` escape, a scheme
    /// that does not start with a letter), or `nil` when it is one. `${value}` counts as a valid segment.
    static func uriReferenceProblem(_ text: String) -> String? {
        let template = text.replacingOccurrences(of: "${value}", with: "v")
        let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%")
        if let bad = template.unicodeScalars.first(where: { !allowed.contains($0) }) {
            return "'\(text)' is not a URI reference: '\(bad.escaped(asASCII: true))' must be percent-encoded; write e.g. \"/commerce/orders\" or \"urn:example:commerce\""
        }
        let bytes = Array(template.utf8)
        for (index, byte) in bytes.enumerated() where byte == UInt8(ascii: "%") {
            let hex = bytes.dropFirst(index + 1).prefix(2)
            guard hex.count == 2, hex.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }) else {
                return "'\(text)' is not a URI reference: '%' must start a percent-encoded byte such as %20"
            }
        }
        // Before the first '/', '?' or '#', a ':' ends a scheme, which must be a letter followed by letters, digits, '+', '-', '.'.
        let head = template.prefix { !"/?#".contains($0) }
        if let colon = head.firstIndex(of: ":") {
            let scheme = head[..<colon]
            guard let first = scheme.unicodeScalars.first, CharacterSet.letters.contains(first),
                  scheme.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "+-.".unicodeScalars.contains($0) }) else {
                return "'\(text)' is not a URI reference: '\(scheme)' before ':' is not a scheme; start with a scheme (\"urn:…\", \"https://…\") or a path (\"/…\")"
            }
        }
        return nil
    }
}
