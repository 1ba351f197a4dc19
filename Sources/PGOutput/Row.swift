/// A row's values together with the ``Relation`` that names them.
public struct Row: Hashable, Sendable {
    /// The table.
    public var relation: Relation
    /// The values, in the relation's column order.
    public var values: [TupleData.Value]

    /// Creates a row; `values` must have one entry per column of `relation`.
    public init(relation: Relation, values: [TupleData.Value]) {
        precondition(relation.columns.count == values.count, "a row needs one value per column")
        self.relation = relation
        self.values = values
    }

    /// The value of the column named `column`, or `nil` when the table has no such column.
    public subscript(column: String) -> TupleData.Value? {
        relation.columnIndex(named: column).map { values[$0] }
    }
}
