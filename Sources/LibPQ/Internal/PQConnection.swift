import CLibPQ
import Foundation
import PGOutput

/// The single owner of one libpq `PGconn`.
///
/// Not thread-safe, like libpq itself: each instance is used only from its owner's serial queue.
/// `@unchecked Sendable` because it is handed to that queue's closures; the owners guarantee serial use.
final class PQConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    /// How many times this connection waited for the server: one per statement, one per pipeline.
    var roundTrips = 0
    /// The ``PreparedStatement``s this connection has prepared, by name (their SQL, to catch a name clash).
    var preparedStatements: [String: String] = [:]
    /// Statements queued by ``Session/executeDeferred(_:_:)``, sent ahead of the next one that waits.
    var deferred: [PipelineStatement] = []

    /// Liveness defaults every connection gets unless its connection string says otherwise.
    ///
    /// libpq's own defaults wait forever: no connect timeout, the kernel's two-hour keepalive, and no limit on how
    /// long sent data may stay unacknowledged, so a silently dropped network (a pulled cable, a firewall or NAT
    /// table change) leaves a connection hanging until TCP gives up, minutes later. With these, a dead peer is
    /// noticed within about 15–20 seconds: keepalive probes after 5 s idle, every 2 s, 3 of them; and
    /// `tcp_user_timeout` ends a connection whose sent data (a query, a status update) stays unacknowledged
    /// for 15 s. They are ordinary connection parameters, so a conninfo that names one keeps its own value.
    static let livenessDefaults: [(String, String)] = [
        ("connect_timeout", "10"), ("keepalives", "1"), ("keepalives_idle", "5"), ("keepalives_interval", "2"),
        ("keepalives_count", "3"), ("tcp_user_timeout", "15000"),
    ]

    /// The same deadlines for the server's end of the connection, sent as `-c` settings in the startup packet's
    /// `options` (a setting the connection string's own `options` names is left to it).
    ///
    /// The client's deadlines end the client's side of a silently cut connection; the server's backend would go on
    /// waiting for the client for the kernel's two hours, and an open transaction of it goes on holding its locks.
    /// Whoever reconnects and redoes that work (a consumer retrying its batch: the same inbox rows, the same offset
    /// rows) then waits behind those locks, silently, with a healthy new connection. With these, the server ends
    /// such a backend within about 15 seconds of the cut, and its transaction rolls back. (Unix sockets ignore them.)
    static let serverLivenessSettings: [(String, String)] = [
        ("tcp_keepalives_idle", "5"), ("tcp_keepalives_interval", "2"), ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "15000"),
    ]

    /// The `options` value a connection sends: the connection string's own, then each of
    /// ``serverLivenessSettings`` it does not name. An explicitly empty `options=''` sends none: a pooler such as
    /// PgBouncer refuses the startup parameter (its sessions' server ends are the pooler's, not ours, anyway).
    static func serverOptions(conninfo: String) -> String {
        let own = parsedOption("options", in: conninfo)
        if own == "" { return "" }
        let added = serverLivenessSettings.filter { setting in !(own ?? "").contains(setting.0) }
            .map { "-c \($0.0)=\($0.1)" }
        return ([own ?? ""] + added).filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The value of `keyword` in a connection string or URI as libpq parses it, or `nil` (unset, or unparsable:
    /// connecting reports that).
    static func parsedOption(_ keyword: String, in conninfo: String) -> String? {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &error) else {
            if let error { PQfreemem(error) }
            return nil
        }
        defer { PQconninfoFree(options) }
        return value(of: keyword, in: options)
    }

    /// The value of `keyword` in a `PQconninfoOption` array (`PQconninfo`, `PQconninfoParse`), or `nil`.
    private static func value(of keyword: String, in options: UnsafeMutablePointer<PQconninfoOption>) -> String? {
        var option = options
        while let name = option.pointee.keyword {
            if String(cString: name) == keyword { return option.pointee.val.map { String(cString: $0) } }
            option += 1
        }
        return nil
    }

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - conninfo: A libpq connection string or URI; its parameters override ``livenessDefaults``.
    ///   - overrides: Parameters that take precedence over the string, e.g. `replication=database`.
    init(conninfo: String, overrides: [(String, String)] = []) throws(PostgresError) {
        // libpq processes keywords in order and keeps the last value: defaults first, then the expanded
        // connection string (which overrides them), then the overrides.
        let keywords = Self.livenessDefaults.map(\.0) + ["dbname", "options"] + overrides.map(\.0)
        let values = Self.livenessDefaults.map(\.1) + [conninfo, Self.serverOptions(conninfo: conninfo)] + overrides.map(\.1)
        let connection = Self.withCStrings(keywords) { keywordPointers in
            Self.withCStrings(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
        }
        if PQstatus(connection) != CONNECTION_OK {
            var message = Self.trimmed(PQerrorMessage(connection))
            if message.contains("unsupported startup parameter: options") {
                message += " (a connection pooler refused the server-side keepalive settings Tailgate sends in"
                    + " `options`: add options='' to the connection string to send none)"
            }
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: message)
        }
        // Server notices ("relation already exists, skipping") would go to stderr raw; they are not errors.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        handle = connection
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Closes the connection now; later calls throw ``PostgresError/Code/closed``.
    func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    var isOpen: Bool { handle.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// The value libpq uses for a connection parameter (`PQconninfo`), e.g. `tcp_user_timeout`.
    func option(_ keyword: String) -> String? {
        guard let handle, let options = PQconninfo(handle) else { return nil }
        defer { PQconninfoFree(options) }
        return Self.value(of: keyword, in: options)
    }

    /// The server's process id for this session.
    var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    func connection() throws(PostgresError) -> OpaquePointer {
        guard let handle else { throw PostgresError(code: .closed, message: "close() was called") }
        return handle
    }

    /// Runs one or more statements with the simple query protocol and returns the last result.
    func exec(_ sql: String) throws(PostgresError) -> QueryResult {
        let connection = try connection()
        roundTrips += 1
        let result = PQexec(connection, sql)
        return try consume(result, connection: connection)
    }

    /// Runs one statement with parameters sent apart from the SQL text.
    func exec(_ sql: String, parameters: [PostgresParameter]) throws(PostgresError) -> QueryResult {
        if !deferred.isEmpty { return try afterDeferred(PipelineStatement(kind: .text(sql), parameters: parameters)) }
        let connection = try connection()
        roundTrips += 1
        let result = Self.withParameters(parameters) { count, types, values, lengths, formats in
            PQexecParams(connection, sql, count, types, values, lengths, formats, 0)
        }
        return try consume(result, connection: connection)
    }

    /// Calls `body` with the C arrays libpq takes for `parameters` (count, types, values, lengths, formats): text
    /// parameters as text with their type left to the server, bytes as binary `bytea`.
    static func withParameters<R>(_ parameters: [PostgresParameter],
                                  _ body: (Int32, [Oid]?, [UnsafePointer<CChar>?]?, [Int32]?, [Int32]?) -> R) -> R {
        if parameters.isEmpty { return body(0, nil, nil, nil, nil) }
        var types: [Oid] = []
        var buffers: [[UInt8]?] = []
        var formats: [Int32] = []
        for parameter in parameters {
            switch parameter {
            case .null:
                types.append(0); buffers.append(nil); formats.append(0)
            case .text(let text):
                types.append(0); buffers.append(Array(text.utf8) + [0]); formats.append(0)
            case .binary(let bytes):
                types.append(17); buffers.append(bytes); formats.append(1) // bytea
            }
        }
        let lengths = buffers.map { Int32($0?.count ?? 0) }
        return withBuffers(buffers) { pointers in body(Int32(parameters.count), types, pointers, lengths, formats) }
    }

    /// Runs a statement that must switch the connection into CopyBoth mode (`START_REPLICATION`).
    func startCopyBoth(_ sql: String) throws(PostgresError) {
        let connection = try connection()
        guard let result = PQexec(connection, sql) else {
            throw lostOrFailed(connection)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COPY_BOTH:
            return
        case PGRES_FATAL_ERROR:
            throw Self.serverError(result, connection: connection)
        default:
            throw PostgresError(code: .protocolViolation, message: "expected CopyBoth after START_REPLICATION, got \(String(cString: PQresStatus(PQresultStatus(result))))")
        }
    }

    func consume(_ result: OpaquePointer?, connection: OpaquePointer) throws(PostgresError) -> QueryResult {
        guard let result else { throw lostOrFailed(connection) }
        defer { PQclear(result) }
        return try Self.decode(result, connection: connection)
    }

    /// The rows of a finished statement's result, or its error (the caller clears the result).
    static func decode(_ result: OpaquePointer, connection: OpaquePointer) throws(PostgresError) -> QueryResult {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            let columnCount = Int(PQnfields(result))
            let rowCount = Int(PQntuples(result))
            let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
            var rows: [[String?]] = []
            rows.reserveCapacity(rowCount)
            for row in 0..<Int32(rowCount) {
                rows.append((0..<Int32(columnCount)).map { column in
                    PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                })
            }
            let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
            return QueryResult(columns: columns, values: rows, affectedRows: affected)
        case PGRES_FATAL_ERROR:
            throw Self.serverError(result, connection: connection)
        default:
            throw PostgresError(code: .protocolViolation, message: "unexpected result \(String(cString: PQresStatus(PQresultStatus(result))))")
        }
    }

    func lostOrFailed(_ connection: OpaquePointer) -> PostgresError {
        let message = Self.trimmed(PQerrorMessage(connection))
        return PostgresError(code: PQstatus(connection) == CONNECTION_BAD ? .connectionLost : .queryFailed,
                             message: message.isEmpty ? "no result" : message)
    }

    static func serverError(_ result: OpaquePointer, connection: OpaquePointer) -> PostgresError {
        func field(_ code: UInt8) -> String? {
            guard let value = PQresultErrorField(result, Int32(code)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field(UInt8(ascii: "C")).map { SQLState($0) }
        let message = field(UInt8(ascii: "M")) ?? trimmed(PQresultErrorMessage(result))
        // An error without SQLSTATE was raised by libpq itself ("server closed the connection unexpectedly", "could
        // not send data to server"): the connection is gone even if PQstatus has not caught up yet.
        let lost = PQstatus(connection) == CONNECTION_BAD || sqlState == nil
            || sqlState?.rawValue.hasPrefix("57P") == true // 57P01–57P05: shutdowns, a dropped database, idle timeout
            || sqlState?.errorClass == .connectionException
        return PostgresError(code: lost ? .connectionLost : .queryFailed, message: message, sqlState: sqlState,
                             detail: field(UInt8(ascii: "D")), hint: field(UInt8(ascii: "H")))
    }

    static func trimmed(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: CopyBoth

    /// The outcome of one non-blocking read in CopyBoth mode.
    enum CopyRead {
        case data([UInt8])
        case wouldBlock
        case done(PostgresError)
    }

    func readCopyData() throws(PostgresError) -> CopyRead {
        let connection = try connection()
        var buffer: UnsafeMutablePointer<CChar>?
        let length = PQgetCopyData(connection, &buffer, 1)
        if length > 0, let buffer {
            defer { PQfreemem(buffer) }
            return .data(Array(UnsafeRawBufferPointer(start: buffer, count: Int(length))))
        }
        if length == 0 { return .wouldBlock }
        if length == -1 {
            // The server ended the copy: collect the final result, which says why.
            var error = PostgresError(code: .connectionLost, message: "the server ended replication")
            while let result = PQgetResult(connection) {
                if PQresultStatus(result) == PGRES_FATAL_ERROR {
                    error = Self.serverError(result, connection: connection)
                }
                PQclear(result)
            }
            return .done(error)
        }
        return .done(lostOrFailed(connection))
    }

    /// Reads whatever the socket holds into libpq's buffer.
    func consumeInput() throws(PostgresError) {
        let connection = try connection()
        if PQconsumeInput(connection) == 0 { throw lostOrFailed(connection) }
    }

    func putCopyData(_ bytes: [UInt8]) throws(PostgresError) {
        let connection = try connection()
        let sent = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(connection, $0.baseAddress, Int32($0.count)) }
        }
        guard sent == 1, PQflush(connection) == 0 else { throw lostOrFailed(connection) }
    }

    func endCopy() {
        guard let connection = handle else { return }
        _ = PQputCopyEnd(connection, nil)
        _ = PQflush(connection)
    }

    /// Waits until the socket is readable or `timeout` passes.
    func waitReadable(timeout: Duration) throws(PostgresError) {
        let connection = try connection()
        let socket = PQsocket(connection)
        guard socket >= 0 else { throw lostOrFailed(connection) }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let milliseconds = max(0, Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        _ = poll(&descriptor, 1, milliseconds)
    }

    /// Pauses the calling thread (the connection's own) for `duration`, with microsecond precision.
    static func pause(_ duration: Duration) {
        let microseconds = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        guard microseconds > 0 else { return }
        usleep(UInt32(clamping: microseconds))
    }

    // MARK: C string helpers

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let duplicates = strings.map { strdup($0) }
        defer { duplicates.forEach { free($0) } }
        let pointers: [UnsafePointer<CChar>?] = duplicates.map { UnsafePointer($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    private static func withBuffers<R>(_ buffers: [[UInt8]?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
        let copies: [UnsafeMutablePointer<CChar>?] = buffers.map { buffer in
            guard let buffer else { return nil }
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, buffer.count))
            buffer.withUnsafeBytes { bytes in
                if let base = bytes.baseAddress { copy.withMemoryRebound(to: UInt8.self, capacity: buffer.count) { $0.update(from: base.assumingMemoryBound(to: UInt8.self), count: buffer.count) } }
            }
            return copy
        }
        defer { copies.forEach { $0?.deallocate() } }
        return body(copies.map { $0.map { UnsafePointer($0) } })
    }
}
