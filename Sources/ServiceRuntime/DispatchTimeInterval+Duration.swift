import Dispatch

extension DispatchTimeInterval {
    /// The same span, to the nanosecond.
    package init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        guard seconds < Int64.max / 1_000_000_000 else {
            self = .never
            return
        }
        self = .nanoseconds(Int(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000)))
    }
}
