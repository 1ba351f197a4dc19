import Foundation

/// A value that can be sent as a query parameter (`$1`, `$2`, …).
///
/// Parameters travel separately from the SQL text, so values never need quoting. Text values are sent in text
/// form and cast by the server to the parameter's type; ``PostgresParameter/binary(_:)`` is sent as `bytea`.
public protocol PostgresBindable: Sendable {
    /// The value in the form it is sent.
    var postgresParameter: PostgresParameter { get }
}

/// One query parameter, as sent to the server.
public enum PostgresParameter: Hashable, Sendable, PostgresBindable {
    /// SQL NULL.
    case null
    /// The value's text form.
    case text(String)
    /// Raw bytes for a `bytea` parameter.
    case binary([UInt8])

    public var postgresParameter: PostgresParameter { self }
}

extension String: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(self) }
}

extension Substring: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}

extension Int: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}

extension Int32: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}

extension Int64: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}

extension Double: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}

extension Bool: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(self ? "true" : "false") }
}

extension UUID: PostgresBindable {
    public var postgresParameter: PostgresParameter { .text(uuidString.lowercased()) }
}

extension Array: PostgresBindable where Element == UInt8 {
    public var postgresParameter: PostgresParameter { .binary(self) }
}

extension Data: PostgresBindable {
    public var postgresParameter: PostgresParameter { .binary(Array(self)) }
}

extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    public var postgresParameter: PostgresParameter { self?.postgresParameter ?? .null }
}
