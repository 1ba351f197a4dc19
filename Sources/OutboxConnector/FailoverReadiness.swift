/// What a failover of the connector's database needs, as `tailgate validate --connect [--standby CONNINFO]` reports
/// it: on the primary, a failover slot and `synchronized_standby_slots`; on a standby that may be promoted,
/// `sync_replication_slots`, `hot_standby_feedback`, `primary_slot_name` and a `dbname` in `primary_conninfo`, and
/// the slot's synchronized copy.
package struct FailoverReadiness: Sendable {
    /// What is in place, one line each.
    package var ready: [String] = []
    /// What a failover would lose or break, one line each with the setting or SQL that fixes it.
    package var problems: [String] = []

    /// Creates an empty report.
    package init(ready: [String] = [], problems: [String] = []) {
        self.ready = ready
        self.problems = problems
    }
}
