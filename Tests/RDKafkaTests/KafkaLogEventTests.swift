import RDKafka
import Testing

@Suite struct KafkaLogEventTests {
    /// librdkafka messages can hold newlines and quotes (broker error strings); the line must stay one line.
    @Test func logfmtKeepsAMultiLineMessageOnOneLine() {
        let event = KafkaLogEvent(level: .warning, facility: "FAIL", client: "rdkafka#producer-1",
                                  message: "localhost:9092/1: Connect failed\n\"refused\" \\ retrying")
        #expect(event.logfmt == #"level=warning component=kafka client=rdkafka#producer-1 facility=FAIL msg="localhost:9092/1: Connect failed\n\"refused\" \\ retrying""#)
    }
}
