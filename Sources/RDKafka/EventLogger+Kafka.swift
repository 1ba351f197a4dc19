import Observability

extension EventLogger {
    /// Logs a librdkafka line as the event `kafka_log` at the level its severity maps to
    /// (``KafkaLogEvent/Level/loggerLevel``): errors as errors, warnings as warnings, notices as info, the rest as
    /// debug. The connector and the consumer forward their clients' lines through this one call.
    ///
    /// - Parameter event: The line, with its facility and message as fields.
    public func log(_ event: KafkaLogEvent) {
        log(event.level.loggerLevel, "kafka_log", [("facility", event.facility), ("message", event.message)])
    }
}
