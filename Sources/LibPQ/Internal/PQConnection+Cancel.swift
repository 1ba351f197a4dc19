import CLibPQ

/// The single owner of one libpq `PGcancel`: what another thread needs to ask the server to cancel the statement
/// a connection is running.
///
/// `@unchecked Sendable`: libpq documents `PQcancel` as safe from any thread (it only reads the `PGcancel`, and
/// opens a connection of its own to send the request); the object is freed only in `deinit`, once nobody holds it.
final class PQCancel: @unchecked Sendable {
    private let handle: OpaquePointer

    fileprivate init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQfreeCancel(handle)
    }

    /// Sends the cancel request for whatever the connection is running now. A connection that is not running a
    /// statement ignores it.
    ///
    /// - Throws: ``PostgresError`` with code `connectionFailed` when the request could not be sent.
    func send() throws(PostgresError) {
        let failure = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer -> String? in
            buffer.initialize(repeating: 0)
            guard PQcancel(handle, buffer.baseAddress, Int32(buffer.count)) != 1 else { return nil }
            return String(cString: buffer.baseAddress!)
        }
        if let failure { throw PostgresError(code: .connectionFailed, message: "the cancel request was not sent: \(failure)") }
    }
}

extension PQConnection {
    /// A cancel request for this connection (`PQgetCancel`), usable from any thread; `nil` when it is closed.
    ///
    /// Called on the connection's own queue, like every other use of it.
    func makeCancel() -> PQCancel? {
        guard let connection = try? connection(), let cancel = PQgetCancel(connection) else { return nil }
        return PQCancel(handle: cancel)
    }
}
