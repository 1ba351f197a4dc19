/// A change of a group consumer's partitions, handed to the rebalance handler on the polling thread.
public enum RebalanceEvent: Hashable, Sendable {
    /// These partitions are being assigned; the handler returns where each starts.
    case assigned([TopicPartition])
    /// These partitions are being taken away. `lost` is true when they were lost without a clean revocation
    /// (session timeout, fenced member): another member may already own them, so work in progress must not be
    /// committed.
    case revoked([TopicPartition], lost: Bool)
}
