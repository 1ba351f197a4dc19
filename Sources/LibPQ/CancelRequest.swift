/// A request to cancel the statement a connection is running, sendable from any thread while the connection's own
/// thread waits for that statement (libpq's `PQcancel`).
///
/// The statement fails with SQLSTATE `57014` (`query_canceled`) and, in a transaction, aborts it; a connection that
/// is not running a statement when the request arrives ignores it. One request serves every later statement of the
/// same connection.
package struct CancelRequest: Sendable {
    let cancel: PQCancel

    /// Asks the server to cancel the connection's statement in flight, if any; returns once the request is sent.
    ///
    /// - Throws: ``PostgresError`` with code `connectionFailed` when the server could not be reached to send it.
    package func send() throws(PostgresError) {
        try cancel.send()
    }
}

extension Session {
    /// A request that cancels this connection's statement in flight from another thread; `nil` when the
    /// connection is closed.
    package func cancelRequest() -> CancelRequest? {
        connection.makeCancel().map(CancelRequest.init(cancel:))
    }
}
