import ServiceRuntime
import LibPQ
@testable import OutboxConsumer
import RDKafka
import Testing

@Suite struct FailureClassifierTests {
    func server(_ state: String) -> PostgresError {
        PostgresError(code: .queryFailed, message: "m", sqlState: SQLState(state))
    }

    func isBatchRetry(_ error: any Error) -> Bool {
        if case .retryBatch = FailureClassifier.classify(error) { return true }
        return false
    }

    @Test(arguments: ["08006", "08001", "53100", "53200", "53300", "57014", "57P01", "57P02", "57P03", "58030",
                      "40001", "40P01", "25006", "42P01", "42703", "42501", "55P03", "3F000"])
    func databaseStatesRetryTheBatchAndAreNeverPoison(state: String) {
        #expect(isBatchRetry(server(state)), "SQLSTATE \(state)")
    }

    @Test func connectionFailuresRetryTheBatchAndReplaceTheConnection() {
        for code in [PostgresError.Code.connectionFailed, .connectionLost, .closed, .protocolViolation] {
            let error = PostgresError(code: code, message: "m")
            #expect(isBatchRetry(error))
            #expect(DatabaseLink.dropsConnection(error))
        }
        #expect(DatabaseLink.dropsConnection(server("57P01")))
        #expect(!DatabaseLink.dropsConnection(server("25006")), "a read-only transaction leaves the connection usable")
    }

    @Test(arguments: ["23505", "23503", "23514", "22P02", "22003", "42601", "P0001"])
    func statementErrorsBelongToTheEvent(state: String) {
        #expect(FailureClassifier.classify(server(state)) == .retryEvent, "SQLSTATE \(state)")
    }

    @Test func aHandlerSaysWhichWithATypedError() {
        #expect(FailureClassifier.classify(HandlerFailure(.poison, "bad payload")) == .poison)
        #expect(isBatchRetry(HandlerFailure(.retryLater, "pricing down")))
        struct Untyped: Error {}
        #expect(FailureClassifier.classify(Untyped()) == .retryEvent, "untyped errors are retried, then poison after the attempts")
    }

    @Test func theDeadLetterTopicNotAnsweringIsKafkasStateNotTheEvents() {
        #expect(isBatchRetry(KafkaError(kind: .timedOut, codeName: "_TIMED_OUT", message: "no ack")))
    }
}
