import RDKafka

extension ConsumerRecord {
    /// The event id a record carries: its `event_id` header, or else its CloudEvents `ce_id` header (a record
    /// produced by another CloudEvents binary-mode producer); `nil` when neither is present and non-empty.
    var outboxEventID: String? {
        for name in ["event_id", "ce_id"] {
            if let id = header(name)?.stringValue, !id.isEmpty { return id }
        }
        return nil
    }
}
