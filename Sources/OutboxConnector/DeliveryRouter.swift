import RDKafka
import Synchronization

/// Sends the producer's delivery reports to the pipeline of the replication session under way.
///
/// The producer outlives sessions (it is replaced only after a fatal error) and reports on its poll thread; a
/// session attaches its ``Pipeline`` before it sends a record and detaches it when it ends, so a late report from
/// an earlier session reaches no pipeline (and would match none of the new one's tokens anyway).
final class DeliveryRouter: Sendable {
    private let pipeline = Mutex<Pipeline?>(nil)

    /// The pipeline attached now, if a session is streaming.
    var current: Pipeline? { pipeline.withLock { $0 } }

    /// Routes reports to `current` from now on.
    func attach(_ current: Pipeline) {
        pipeline.withLock { $0 = current }
    }

    /// Stops routing reports to `current`, unless another pipeline was attached since.
    func detach(_ current: Pipeline) {
        pipeline.withLock { if $0 === current { $0 = nil } }
    }

    /// Called on the producer's poll thread with each batch of delivery reports.
    func delivered(_ reports: [DeliveryReport]) {
        current?.delivered(reports)
    }
}
