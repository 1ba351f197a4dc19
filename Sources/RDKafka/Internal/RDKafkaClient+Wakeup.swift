import CLibRDKafka

extension RDKafkaClient {
    /// Interrupts `rd_kafka_consumer_poll` waiting on the consumer queue (`rd_kafka_queue_yield`); a poll that is not
    /// in progress yet returns at once instead.
    func wakeConsumerPoll() {
        guard let queue = rd_kafka_queue_get_consumer(handle) else { return }
        rd_kafka_queue_yield(queue)
        rd_kafka_queue_destroy(queue)
    }
}
