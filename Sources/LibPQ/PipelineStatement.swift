/// One statement of a pipeline (``Session/pipeline(_:)``): SQL text or a ``PreparedStatement``, with its parameters.
public struct PipelineStatement: Sendable {
    /// What runs.
    public enum Kind: Sendable {
        /// SQL text, parsed on every execution.
        case text(String)
        /// A statement prepared once per connection (the preparation travels in the same pipeline).
        case prepared(PreparedStatement)
    }

    /// What runs.
    public var kind: Kind
    /// The values of `$1`, `$2`, …, in order.
    public var parameters: [PostgresParameter]

    /// A statement given as SQL text.
    ///
    /// - Parameters:
    ///   - sql: One statement; `$1`, `$2`, … refer to `parameters`.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    public init(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) {
        self.kind = .text(sql)
        self.parameters = parameters.map { $0?.postgresParameter ?? .null }
    }

    /// A statement with parameters already in their sent form.
    init(kind: Kind, parameters: [PostgresParameter]) {
        self.kind = kind
        self.parameters = parameters
    }

    /// A prepared statement.
    ///
    /// - Parameters:
    ///   - statement: The statement; prepared in the pipeline if this connection has not prepared it yet.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    public init(_ statement: PreparedStatement, _ parameters: [(any PostgresBindable)?] = []) {
        self.kind = .prepared(statement)
        self.parameters = parameters.map { $0?.postgresParameter ?? .null }
    }
}
