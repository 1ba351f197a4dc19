/// The rows a statement returned, in text form, plus the number of rows it affected.
public struct QueryResult: Sendable {
    /// One returned row.
    public struct Row: Sendable {
        /// The row's values in column order; `nil` is SQL NULL.
        public let values: [String?]
        let columnIndex: [String: Int]

        /// The text value of the column named `column`; `nil` for NULL or an unknown column.
        public subscript(column: String) -> String? {
            columnIndex[column].flatMap { values[$0] }
        }

        /// The text value at `index`; `nil` for NULL.
        public subscript(index: Int) -> String? { values[index] }

        /// The value of `column` as an integer; `nil` for NULL, an unknown column or a non-integer.
        public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }

        /// The value of `column` as a boolean (`t`/`f`); `nil` for NULL or an unknown column.
        public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" } }
    }

    /// The column names.
    public let columns: [String]
    /// The rows.
    public let rows: [Row]
    /// The number of rows the statement inserted, updated or deleted (0 for other statements).
    public let affectedRows: Int

    /// Creates a result.
    public init(columns: [String], values: [[String?]], affectedRows: Int) {
        self.columns = columns
        var index: [String: Int] = [:]
        for (position, name) in columns.enumerated() where index[name] == nil { index[name] = position }
        self.rows = values.map { Row(values: $0, columnIndex: index) }
        self.affectedRows = affectedRows
    }

    /// The first row, if any.
    public var first: Row? { rows.first }
}
