/// W3C Trace Context (`traceparent`, `tracestate`) values read from an outbox row, checked before they become
/// Kafka headers. Pure: no I/O.
///
/// A value that does not follow the W3C Trace Context rules is dropped, never published: OpenTelemetry's Kafka
/// instrumentations would otherwise start a trace from garbage or reject the record's context. `tracestate` only
/// travels with a valid `traceparent`, as the specification requires.
struct TraceContext: Sendable, Hashable {
    /// The `traceparent` value, e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
    var traceParent: String
    /// The `tracestate` value, if the row had a valid one.
    var traceState: String?

    /// Creates a context from values already checked.
    init(traceParent: String, traceState: String? = nil) {
        self.traceParent = traceParent
        self.traceState = traceState
    }

    /// Why a row's trace context was dropped.
    struct Rejection: Sendable, Hashable, CustomStringConvertible {
        /// Which header the value was for (`traceparent` or `tracestate`).
        var header: String
        /// What is wrong with it.
        var reason: String
        /// `header: reason`.
        var description: String { "\(header): \(reason)" }
    }

    /// The longest `tracestate` the specification allows a vendor to propagate.
    static let maxTraceStateBytes = 512

    /// Checks a row's values.
    ///
    /// - Parameters:
    ///   - traceParent: The trace column's text; `nil` (SQL NULL) or empty means the row carries no context.
    ///   - traceState: The trace state column's text, if that column is configured.
    /// - Returns: The context to publish (`nil` when there is none or the `traceparent` is invalid) and what was
    ///   dropped, if anything.
    static func check(traceParent: String?, traceState: String?) -> (context: TraceContext?, rejection: Rejection?) {
        guard let traceParent, !traceParent.isEmpty else { return (nil, nil) }
        if let reason = invalidTraceParent(traceParent) {
            return (nil, Rejection(header: "traceparent", reason: reason))
        }
        guard let traceState, !traceState.isEmpty else { return (TraceContext(traceParent: traceParent), nil) }
        if let reason = invalidTraceState(traceState) {
            return (TraceContext(traceParent: traceParent), Rejection(header: "tracestate", reason: reason))
        }
        return (TraceContext(traceParent: traceParent, traceState: traceState), nil)
    }

    /// Why `text` is not a valid `traceparent`, or `nil` when it is.
    ///
    /// `version "-" trace-id "-" parent-id "-" trace-flags`, lower-case hex: version `00` has exactly these four
    /// fields; a later version may append `-…` fields, which are kept (the specification asks receivers to accept
    /// them). Version `ff`, an all-zero trace id and an all-zero parent id are invalid.
    static func invalidTraceParent(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 55 else { return "\(bytes.count) bytes; a traceparent is 55 (00-<32 hex>-<16 hex>-<2 hex>)" }
        guard bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else {
            return "fields are not separated by '-' at the expected places (00-<32 hex>-<16 hex>-<2 hex>)"
        }
        func isLowerHex(_ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        }
        guard isLowerHex(0..<2), isLowerHex(3..<35), isLowerHex(36..<52), isLowerHex(53..<55) else {
            return "not lower-case hexadecimal"
        }
        let version = text.prefix(2)
        if version == "ff" { return "version ff is invalid" }
        if version == "00", bytes.count != 55 { return "version 00 has exactly 55 bytes, not \(bytes.count)" }
        if bytes.count > 55, bytes[55] != UInt8(ascii: "-") { return "a later version's extra fields must follow a '-'" }
        if bytes[3..<35].allSatisfy({ $0 == UInt8(ascii: "0") }) { return "the trace id is all zeros" }
        if bytes[36..<52].allSatisfy({ $0 == UInt8(ascii: "0") }) { return "the parent id is all zeros" }
        return nil
    }

    /// Why `text` is not a `tracestate` Tailgate forwards, or `nil` when it is: at most 512 bytes of printable
    /// ASCII, comma-separated `key=value` members.
    static func invalidTraceState(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxTraceStateBytes else { return "\(bytes.count) bytes; at most \(maxTraceStateBytes)" }
        guard bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else { return "not printable ASCII" }
        let members = text.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: " \t") }
            .filter { !$0.isEmpty }
        guard members.count <= 32 else { return "\(members.count) members; at most 32" }
        for member in members {
            guard let equals = member.firstIndex(of: "="), equals != member.startIndex,
                  member.index(after: equals) != member.endIndex else {
                return "member '\(member.prefix(40))' is not key=value"
            }
        }
        return nil
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var text = self
        while let first = text.first, set.contains(first) { text = text.dropFirst() }
        while let last = text.last, set.contains(last) { text = text.dropLast() }
        return text
    }
}
