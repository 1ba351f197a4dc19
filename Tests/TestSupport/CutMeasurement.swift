/// One silent network cut, measured: how long it was held, when each sign of detection first showed, and how long
/// after the heal the pipeline moved again.
public struct CutMeasurement: Sendable, CustomStringConvertible {
    /// How long a cut is held.
    public enum Length: Sendable {
        /// Exactly this long.
        case fixed(Duration)
        /// At least `atLeast`, then until every sign of detection showed, at most `atMost`.
        case untilDetected(atLeast: Duration, atMost: Duration)
    }

    /// What was cut, e.g. `connector↔postgres`.
    public var name: String
    /// How long the cut was held.
    public var held: Duration
    /// Each sign of detection that showed, with its time since the cut.
    public var detected: [String: Duration]
    /// The signs that were watched for (shown as `–` when they never showed).
    public var signals: [String]
    /// Time from the heal until the pipeline moved again; `nil` when it did not within the recovery timeout.
    public var recovered: Duration?

    /// Whether `signal` showed within `bound` of the cut.
    public func detected(_ signal: String, within bound: Duration) -> Bool {
        detected[signal].map { $0 <= bound } ?? false
    }

    public var description: String {
        let signs = signals.map { signal in "\(signal) \(detected[signal].map(Self.seconds) ?? "–")" }.joined(separator: ", ")
        return "netlab \(name): cut held \(Self.seconds(held)); detected: \(signs); recovered \(recovered.map(Self.seconds) ?? "NOT within the timeout") after the heal"
    }

    /// `12.3 s`.
    public static func seconds(_ duration: Duration) -> String {
        let components = duration.components
        let value = Double(components.seconds) + Double(components.attoseconds) / 1e18
        return "\((value * 10).rounded() / 10) s"
    }
}
