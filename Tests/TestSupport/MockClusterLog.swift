import RDKafka

/// The log handler for test mock clusters: silent, except that critical lines are printed, so that when librdkafka
/// aborts the test process (the mock asserts on some failures, such as a port it cannot re-bind) its cause is
/// in the output next to the crash.
public let mockClusterLog: KafkaLogHandler = { event in
    if event.level.isAtLeast(.critical) { print("librdkafka mock cluster \(event.level): \(event.message)") }
}
