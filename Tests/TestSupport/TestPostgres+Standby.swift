import Foundation

extension TestPostgres {
    /// Starts a physical streaming standby of `primary`: `pg_basebackup -R` through the physical slot `slot` (made
    /// by the base backup), its own directory and port, `hot_standby_feedback = on`, and `primary_conninfo` naming
    /// `database` (slot synchronization needs one). `settings` are appended, e.g. `sync_replication_slots = on`.
    ///
    /// - Throws: ``TestPostgresError`` with the tool's output when `pg_basebackup` or `pg_ctl` fails.
    public static func startStandby(of primary: TestPostgres, slot: String, database: String = "postgres",
                                    settings: [String] = []) async throws -> TestPostgres {
        try await offPool {
            let directory = try makeClusterDirectory()
            try run("\(binaries)/pg_basebackup", ["-D", "\(directory)/data", "-h", primary.directory, "-p", "\(primary.port)",
                                                 "-U", "postgres", "-X", "stream", "-C", "-S", slot, "-R", "--no-sync", "-c", "fast"])
            let port = try freePort()
            // postgresql.auto.conf is read last: what pg_basebackup -R wrote there is overridden here.
            let configuration = ["port = \(port)", "unix_socket_directories = '\(directory)'", "hot_standby_feedback = on",
                                 "primary_slot_name = '\(slot)'",
                                 "primary_conninfo = 'host=\(primary.directory) port=\(primary.port) user=postgres dbname=\(database) application_name=\(slot)'"]
                + settings
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/data/postgresql.auto.conf"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(("\n" + configuration.joined(separator: "\n") + "\n").utf8))
            try handle.close()
            let standby = TestPostgres(directory: directory, port: port)
            started.withLock { $0.append(directory) }
            registerExitHandler
            try standby.pgctl(["start", "-w", "-l", "\(directory)/server.log"])
            return standby
        }
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    public func promote() async throws {
        try await offPool { try self.pgctl(["promote", "-w"]) }
    }
}
