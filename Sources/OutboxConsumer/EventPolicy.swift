/// What becomes of each event of a batch: applied, skipped, parked, dead-lettered, retried, or the reason its batch
/// rolls back. Pure: no I/O, no clock, no logging.
///
/// ``BatchApplier`` asks it when an event is received and each time the event's handler fails, and performs the
/// answer; the batch as a whole is ``ConsumerStateMachine``'s. Every per-event decision lives here, tested without a
/// database or a broker.
///
/// ```
/// received ──seen before──▶ skipDuplicate
///          ──no event_id, missingEventID .deadLetter──▶ deadLetter
///          ──its key parked (parkKey)──▶ parkBehindItsKey
///          ──otherwise──▶ runHandler ──fails──▶ handlerFailed:
///
///                  the database's state        poison, or attempts used up      another attempt may succeed
/// fast pass        rollBackBatch               applyWithSavepoints              applyWithSavepoints
/// savepoints       rollBackBatch               parkItsKey | deadLetter          retryHandler
/// release          rollBackBatch               stopRelease                      retryHandler
/// ```
struct EventPolicy: Sendable {
    /// Which way the event's handler runs.
    enum Pass: Sendable, CaseIterable {
        /// Straight in the batch's transaction, without savepoints (a failure sends the batch back for them).
        case fast
        /// In a savepoint of its own, where it can be retried and set aside alone.
        case savepoints
        /// In a savepoint, as one of a parked key's events being released.
        case release
    }

    /// What to do with an event before its handler runs.
    enum Admission: Equatable, Sendable {
        /// The inbox already holds it (or the batch holds it twice): skip it.
        case skipDuplicate
        /// Send it to the dead-letter topic once every event of the batch has run, without applying it; `reason` goes
        /// with it.
        case deadLetter(reason: String)
        /// Its key is parked: park it behind the key's events, in order; the handler does not see it until the release.
        case parkBehindItsKey
        /// Run its handler.
        case runHandler
    }

    /// What to do after the event's handler failed.
    enum AfterFailure: Equatable, Sendable {
        /// The failure is the database's (or Kafka's, or the handler asked to retry later): roll the whole batch back
        /// and retry it after a backoff. `reason` is what an operator should look at.
        case rollBackBatch(reason: String)
        /// The attempt without savepoints failed: roll it back and apply the batch again with a savepoint per event.
        case applyWithSavepoints
        /// Wait the handler's retry delay, then run it again in its savepoint.
        case retryHandler
        /// Poison: park the event as the head of its key (later events of the key park behind it). `reason` is stored.
        case parkItsKey(reason: String)
        /// Poison: send it to the dead-letter topic once every event of the batch has run, and move on.
        case deadLetter(reason: String)
        /// Poison again during a release: the event heads its key again, with `reason`; the release stops there.
        case stopRelease(reason: String)
    }

    /// What happens to a poison event.
    let poisonPolicy: ConsumerConfiguration.PoisonPolicy
    /// What happens to a record without an `event_id` header.
    let missingEventID: ConsumerConfiguration.MissingEventIDPolicy
    /// How many times a handler runs for one event before the event is poison.
    let handlerAttempts: Int

    /// The policy `configuration` sets.
    init(configuration: ConsumerConfiguration) {
        self.init(poisonPolicy: configuration.poisonPolicy, missingEventID: configuration.missingEventID,
                  handlerAttempts: configuration.handlerAttempts)
    }

    /// A policy from its three settings.
    init(poisonPolicy: ConsumerConfiguration.PoisonPolicy, missingEventID: ConsumerConfiguration.MissingEventIDPolicy,
         handlerAttempts: Int) {
        self.poisonPolicy = poisonPolicy
        self.missingEventID = missingEventID
        self.handlerAttempts = handlerAttempts
    }

    /// Whether poison parks keys: the batch then reads which keys are parked, and parks events behind them.
    var parksKeys: Bool { poisonPolicy == .parkKey }

    /// An event of the batch, before its handler runs.
    ///
    /// - Parameters:
    ///   - isNew: Whether the inbox claim took its id (and the batch has not held it already).
    ///   - hasEventID: Whether the record carries an `event_id` header (without one its identity is its coordinates).
    ///   - keyParked: Whether its key is parked; asked only when ``parksKeys`` and the event is otherwise to be run.
    func received(isNew: Bool, hasEventID: Bool, keyParked: @autoclosure () -> Bool) -> Admission {
        guard isNew else { return .skipDuplicate }
        if !hasEventID && missingEventID == .deadLetter { return .deadLetter(reason: "the record has no event_id header") }
        if parksKeys && keyParked() { return .parkBehindItsKey }
        return .runHandler
    }

    /// The event's handler failed.
    ///
    /// - Parameters:
    ///   - verdict: The failure, classified (``FailureClassifier/classify(_:)``).
    ///   - failures: How many times the handler has failed for this event in this pass, this failure included.
    ///   - pass: Which way the handler ran.
    ///   - reason: What went wrong, stored with a parked or dead-lettered event; asked only for poison.
    func handlerFailed(_ verdict: FailureClassifier.Verdict, failures: Int, in pass: Pass,
                       reason: @autoclosure () -> String) -> AfterFailure {
        if case .retryBatch(let why) = verdict { return .rollBackBatch(reason: why) }
        // Which event failed, and whether it fails again, is found with a savepoint per event.
        guard pass != .fast else { return .applyWithSavepoints }
        guard verdict == .poison || failures >= handlerAttempts else { return .retryHandler }
        if pass == .release { return .stopRelease(reason: reason()) }
        return parksKeys ? .parkItsKey(reason: reason()) : .deadLetter(reason: reason())
    }
}
