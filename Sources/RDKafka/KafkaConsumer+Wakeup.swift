extension KafkaConsumer {
    /// Makes a ``poll(maxRecords:timeout:)`` in progress return at once with the records it has so far (or the next
    /// one, if none is in progress). Safe from any thread while the consumer is open; for waking a polling thread on
    /// a stop request instead of polling in short slices.
    public func wakeup() {
        guard !closed.load(ordering: .acquiring) else { return }
        client.wakeConsumerPoll()
    }
}
