import Foundation

extension StatusReport {
    /// What to check besides the connector's own database.
    package struct Targets: Sendable {
        /// Consumer databases (`--consumer-postgres`), each holding one or more groups' tables.
        package var consumerDatabases: [String] = []
        /// librdkafka properties for the consumers' cluster; the connector file's `kafka` when `nil`.
        package var consumerKafka: [String: String]?
        /// The consumers' table names.
        package var consumerTables: ConsumerGroupStatus.Tables = .defaults
        /// Topics every consumer group reads (besides those it stored offsets for).
        package var consumerTopics: [String] = []
        /// A standby to check the slot's synchronized copy on (PostgreSQL 17+).
        package var standby: String?
        /// Where the connector's `/metrics` answers; `nil` for none. Defaults to the file's `metrics.listen`.
        package var metricsAddress: String?

        /// Creates targets.
        package init(consumerDatabases: [String] = [], consumerKafka: [String: String]? = nil,
                    consumerTables: ConsumerGroupStatus.Tables = .defaults, consumerTopics: [String] = [], standby: String? = nil,
                    metricsAddress: String? = nil) {
            self.consumerDatabases = consumerDatabases
            self.consumerKafka = consumerKafka
            self.consumerTables = consumerTables
            self.consumerTopics = consumerTopics
            self.standby = standby
            self.metricsAddress = metricsAddress
        }
    }

    /// Reads everything and evaluates it. Never throws: what cannot be reached becomes a finding of severity
    /// `unknown`. Changes nothing anywhere.
    package static func gather(configuration: ConnectorConfiguration, targets: Targets, thresholds: Thresholds = Thresholds()) async -> StatusReport {
        var slot: SlotStatus?
        var slotError: String?
        do {
            slot = try await SlotStatus.read(configuration: configuration, standby: targets.standby)
        } catch {
            slotError = "\(error)"
        }
        var probe: ConnectorProbe?
        if let address = targets.metricsAddress {
            probe = await ConnectorProbe.read(address: address, heartbeatIntervalSeconds: configuration.heartbeatIntervalSeconds)
        }
        var groups: [ConsumerGroupStatus] = []
        var errors: [ConsumerDatabaseError] = []
        for database in targets.consumerDatabases {
            do {
                groups += try await ConsumerGroupStatus.read(conninfo: database, kafka: targets.consumerKafka ?? configuration.kafka,
                                                             tables: targets.consumerTables, topics: targets.consumerTopics)
            } catch {
                errors.append(ConsumerDatabaseError(database: ConnectorConfiguration.mask(database), error: "\(error)"))
            }
        }
        var report = StatusReport(connector: configuration.name, database: configuration.maskedConninfo, time: Date(), slot: slot,
                                  slotError: slotError, connectorProbe: probe, consumerGroups: groups, consumerErrors: errors,
                                  thresholds: thresholds)
        report.evaluate()
        return report
    }
}
