/// The table shapes a pgoutput session has described, keyed by relation OID.
///
/// pgoutput sends a ``Relation`` once per session before the first change to a table, and again when it changes;
/// row messages carry only the OID. The cache turns them into ``Row``s with named columns.
public struct RelationCache: Sendable {
    private var relations: [UInt32: Relation] = [:]

    /// Creates an empty cache.
    public init() {}

    /// Records (or replaces) a table's shape.
    public mutating func update(_ relation: Relation) {
        relations[relation.id] = relation
    }

    /// Forgets every table, e.g. when a new replication session starts.
    public mutating func removeAll() {
        relations.removeAll()
    }

    /// The shape last described for `id`.
    public subscript(id: UInt32) -> Relation? { relations[id] }

    /// Names the values of `tuple` with the columns of relation `relationID`.
    ///
    /// - Throws: ``PGOutputError`` with code `unknownRelation` when no Relation message described the OID, or
    ///   `invalidValue` when the tuple's column count differs from the relation's.
    public func row(relationID: UInt32, tuple: TupleData, messageName: String) throws(PGOutputError) -> Row {
        guard let relation = relations[relationID] else {
            throw PGOutputError(code: .unknownRelation, message: messageName, field: "relation OID", offset: 1,
                                detail: "OID \(relationID)")
        }
        guard relation.columns.count == tuple.values.count else {
            throw PGOutputError(code: .invalidValue, message: messageName, field: "tuple column count", offset: 0,
                                detail: "\(tuple.values.count) values for \(relation.columns.count) columns of \(relation.namespace).\(relation.name)")
        }
        return Row(relation: relation, values: tuple.values)
    }
}
