import LibPQ
@testable import OutboxConsumer
import RDKafka
import Testing

/// Every per-event decision without a database or a broker: each failure class, in each pass, under each setting.
@Suite struct EventPolicyTests {
    typealias Policy = EventPolicy

    /// The failures a handler (or the consumer's own SQL) can raise, one of each class, with the verdict each gets.
    enum Failure: CaseIterable, CustomStringConvertible {
        /// The database's state: a lock timeout (`55P03`).
        case databaseState
        /// The connection went away.
        case connectionLost
        /// A handler's `retryLater`.
        case handlerRetryLater
        /// The dead-letter topic did not acknowledge.
        case kafka
        /// The event's own statement failed: a unique violation (`23505`).
        case statementError
        /// An error without a verdict of its own.
        case untyped
        /// A handler's `poison`.
        case handlerPoison

        var description: String { "\(error)" }

        var error: any Error {
            switch self {
            case .databaseState: PostgresError(code: .queryFailed, message: "lock timeout", sqlState: SQLState("55P03"))
            case .connectionLost: PostgresError(code: .connectionLost, message: "server closed the connection")
            case .handlerRetryLater: HandlerFailure(.retryLater, "pricing down")
            case .kafka: KafkaError(kind: .timedOut, codeName: "_TIMED_OUT", message: "no ack")
            case .statementError: PostgresError(code: .queryFailed, message: "duplicate key", sqlState: SQLState("23505"))
            case .untyped: Untyped()
            case .handlerPoison: HandlerFailure(.poison, "bad payload")
            }
        }

        var verdict: FailureClassifier.Verdict { FailureClassifier.classify(error) }

        /// Whether the failure describes something outside the event (the batch rolls back, never poison).
        var isOutsideTheEvent: Bool { [.databaseState, .connectionLost, .handlerRetryLater, .kafka].contains(self) }
    }

    struct Untyped: Error, CustomStringConvertible { var description: String { "untyped" } }

    /// Every combination of the settings the per-event decisions read.
    struct Settings: CustomStringConvertible, Sendable {
        var poisonPolicy: ConsumerConfiguration.PoisonPolicy
        var missingEventID: ConsumerConfiguration.MissingEventIDPolicy

        static let all: [Settings] = [ConsumerConfiguration.PoisonPolicy.parkKey, .deadLetter].flatMap { poison in
            [ConsumerConfiguration.MissingEventIDPolicy.useRecordCoordinates, .deadLetter].map { Settings(poisonPolicy: poison, missingEventID: $0) }
        }

        var description: String { "poison \(poisonPolicy), missing id \(missingEventID)" }

        func policy(attempts: Int = 3) -> Policy {
            Policy(poisonPolicy: poisonPolicy, missingEventID: missingEventID, handlerAttempts: attempts)
        }
    }

    static let outsideTheEventInEveryPass = Failure.allCases.filter(\.isOutsideTheEvent).flatMap { failure in
        Policy.Pass.allCases.map { (failure, $0) }
    }
    static let ofTheEvent = Failure.allCases.filter { !$0.isOutsideTheEvent }

    // MARK: received

    @Test(arguments: Settings.all) func aDuplicateIsSkippedWhateverElseHolds(settings: Settings) {
        for hasEventID in [true, false] {
            for keyParked in [true, false] {
                #expect(settings.policy().received(isNew: false, hasEventID: hasEventID, keyParked: keyParked) == .skipDuplicate)
            }
        }
    }

    @Test(arguments: Settings.all) func aRecordWithoutEventIDFollowsItsPolicyBeforeItsKeyIsLookedAt(settings: Settings) {
        var asked = false
        let admission = settings.policy().received(isNew: true, hasEventID: false, keyParked: { asked = true; return true }())
        switch settings.missingEventID {
        case .deadLetter:
            #expect(admission == .deadLetter(reason: "the record has no event_id header"))
            #expect(!asked, "a record dead-lettered for its identity never parks")
        case .useRecordCoordinates:
            #expect(admission == (settings.poisonPolicy == .parkKey ? .parkBehindItsKey : .runHandler))
        }
    }

    @Test(arguments: Settings.all) func anEventOfAParkedKeyParksBehindItOnlyWhenParking(settings: Settings) {
        var asked = false
        let admission = settings.policy().received(isNew: true, hasEventID: true, keyParked: { asked = true; return true }())
        #expect(admission == (settings.poisonPolicy == .parkKey ? .parkBehindItsKey : .runHandler))
        #expect(asked == (settings.poisonPolicy == .parkKey), "the parked keys are read only when parking")
        #expect(settings.policy().received(isNew: true, hasEventID: true, keyParked: false) == .runHandler)
    }

    @Test func parkingIsThePoisonPolicysChoice() {
        #expect(Settings(poisonPolicy: .parkKey, missingEventID: .deadLetter).policy().parksKeys)
        #expect(!Settings(poisonPolicy: .deadLetter, missingEventID: .deadLetter).policy().parksKeys)
    }

    // MARK: handlerFailed

    /// A failure outside the event rolls the batch back in every pass, under every setting, whatever the attempts:
    /// never poison, never retried in its savepoint.
    @Test(arguments: outsideTheEventInEveryPass) func aFailureOutsideTheEventRollsTheBatchBack(failure: Failure, pass: Policy.Pass) {
        guard case .retryBatch(let reason) = failure.verdict else {
            Issue.record("\(failure) is classified \(failure.verdict)")
            return
        }
        for settings in Settings.all {
            for failures in [1, 3, 10] {
                var asked = false
                let answer = settings.policy().handlerFailed(failure.verdict, failures: failures, in: pass, reason: { asked = true; return "" }())
                #expect(answer == .rollBackBatch(reason: reason), "\(settings), \(failures) failures")
                #expect(!asked)
            }
        }
    }

    /// In the fast pass any failure of the event sends the batch back to be applied with savepoints, where the
    /// failing event is found: the fast pass never retries, parks or dead-letters.
    @Test(arguments: ofTheEvent) func aFailureOfTheEventInTheFastPassAppliesTheBatchWithSavepoints(failure: Failure) {
        for settings in Settings.all {
            for failures in [1, 3, 10] {
                #expect(settings.policy().handlerFailed(failure.verdict, failures: failures, in: .fast, reason: "e") == .applyWithSavepoints)
            }
        }
    }

    /// With savepoints, a failure that another attempt may cure is retried until the attempts are used up; then,
    /// and at once for a handler's poison, the event parks its key or is dead-lettered, by the poison policy.
    @Test(arguments: Settings.all) func withSavepointsTheEventIsRetriedThenParkedOrDeadLettered(settings: Settings) {
        let policy = settings.policy(attempts: 3)
        let poison: Policy.AfterFailure = settings.poisonPolicy == .parkKey ? .parkItsKey(reason: "e") : .deadLetter(reason: "e")
        for failure in Self.ofTheEvent {
            for failures in 1...4 {
                let answer = policy.handlerFailed(failure.verdict, failures: failures, in: .savepoints, reason: "e")
                let expected: Policy.AfterFailure = failure == .handlerPoison || failures >= 3 ? poison : .retryHandler
                #expect(answer == expected, "\(failure), failure \(failures) of 3")
            }
        }
    }

    /// In a release, poison (or the attempts used up) stops the release at the event, whatever the poison policy:
    /// a release never dead-letters nor parks a key anew.
    @Test(arguments: Settings.all) func inAReleaseTheEventIsRetriedThenStopsTheRelease(settings: Settings) {
        let policy = settings.policy(attempts: 2)
        for failure in Self.ofTheEvent {
            for failures in 1...3 {
                let answer = policy.handlerFailed(failure.verdict, failures: failures, in: .release, reason: "again")
                let expected: Policy.AfterFailure = failure == .handlerPoison || failures >= 2 ? .stopRelease(reason: "again") : .retryHandler
                #expect(answer == expected, "\(failure), failure \(failures) of 2")
            }
        }
    }

    /// With a single attempt, the first failure of the event is poison.
    @Test func oneAttemptMeansTheFirstFailureIsPoison() {
        let policy = Settings(poisonPolicy: .deadLetter, missingEventID: .useRecordCoordinates).policy(attempts: 1)
        #expect(policy.handlerFailed(Failure.untyped.verdict, failures: 1, in: .savepoints, reason: "untyped") == .deadLetter(reason: "untyped"))
    }

    /// The reason is built only when it is stored (poison): a retry costs no description of the error.
    @Test func theReasonIsAskedOnlyForPoison() {
        let policy = Settings(poisonPolicy: .parkKey, missingEventID: .useRecordCoordinates).policy(attempts: 3)
        var asked = 0
        _ = policy.handlerFailed(.retryEvent, failures: 1, in: .savepoints, reason: { asked += 1; return "" }())
        _ = policy.handlerFailed(.retryEvent, failures: 1, in: .fast, reason: { asked += 1; return "" }())
        #expect(asked == 0)
        _ = policy.handlerFailed(.poison, failures: 1, in: .savepoints, reason: { asked += 1; return "" }())
        #expect(asked == 1)
    }

    @Test func theConfigurationSetsThePolicy() {
        var configuration = ConsumerConfiguration(groupID: "g", topics: ["t"], kafka: [:], postgres: "", handlerAttempts: 5,
                                                  missingEventID: .deadLetter, poisonPolicy: .deadLetter)
        var policy = Policy(configuration: configuration)
        #expect(policy.handlerAttempts == 5 && policy.missingEventID == .deadLetter && !policy.parksKeys)
        configuration.poisonPolicy = .parkKey
        policy = Policy(configuration: configuration)
        #expect(policy.parksKeys)
    }
}
