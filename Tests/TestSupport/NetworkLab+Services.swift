import Foundation
import LibPQ

extension NetworkLab {
    /// `tailgate dev-kafka` running in a lab host.
    public struct DevKafka: Sendable {
        /// The process.
        public let process: ChildProcess
        /// The bootstrap servers value: `127.0.0.1:PORT,...`, valid inside the Kafka host and every host it was
        /// exposed to.
        public let bootstrapServers: String
        /// The brokers' ports.
        public let ports: [Int]
    }

    /// Starts a throwaway PostgreSQL cluster in `host`, listening on its lab address (and its Unix socket, which
    /// this process uses: ``TestPostgres/conninfo(database:user:)`` works across the lab), and trusting every lab
    /// address. ``close()`` stops it.
    public func startPostgres(in host: String, settings: [String] = []) async throws -> TestPostgres {
        let postgres = try await TestPostgres.start(settings: ["listen_addresses = '\(address(host))'"] + settings,
                                                    networkNamespace: namespace(host))
        adopt(postgres)
        let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(postgres.directory)/data/pg_hba.conf"))
        try hba.seekToEnd()
        try hba.write(contentsOf: Data("host all all 198.18.0.0/16 trust\nhost replication all 198.18.0.0/16 trust\n".utf8))
        try hba.close()
        let admin = try await Connection.connect(postgres.conninfo())
        try await admin.query("SELECT pg_reload_conf()")
        await admin.close()
        return postgres
    }

    /// A libpq connection string for `postgres` (started by ``startPostgres(in:settings:)`` in `host`) over the lab
    /// network, as a client in another host uses it.
    public func conninfo(of postgres: TestPostgres, in host: String, database: String) -> String {
        "host=\(address(host)) port=\(postgres.port) dbname=\(database) user=postgres"
    }

    /// Starts `tailgate dev-kafka` in `host` and exposes its brokers to each of `clients` (see
    /// ``exposeLoopback(ports:of:to:)``).
    ///
    /// - Throws: ``TestPostgresError`` when it prints no bootstrap line within 30 s.
    public func startDevKafka(in host: String, exposedTo clients: [String], brokers: Int = 3, partitions: Int = 6,
                              topics: [String], outputPath: String) async throws -> DevKafka {
        let process = try spawn(in: host, ChildProcess.productsDirectory + "/tailgate",
                                ["dev-kafka", "--brokers", "\(brokers)", "--partitions", "\(partitions)", "--topics", topics.joined(separator: ",")],
                                outputPath: outputPath)
        guard let line = await process.waitForLine(timeout: .seconds(30), { $0.hasPrefix("127.0.0.1:") }) else {
            throw TestPostgresError(message: "tailgate dev-kafka printed no bootstrap line: \(process.output)")
        }
        let bootstrap = line.trimmingCharacters(in: .whitespaces)
        let ports = bootstrap.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
        for client in clients { try await exposeLoopback(ports: ports, of: host, to: client) }
        return DevKafka(process: process, bootstrapServers: bootstrap, ports: ports)
    }
}
