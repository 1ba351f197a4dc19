/// Text forms of PostgreSQL arrays, for sending many values as one parameter (`unnest($1::text[])`).
public enum PostgresArray {
    /// The array literal `{"a","b",NULL}` with every element quoted and `"`/`\` escaped.
    public static func literal(_ elements: [String?]) -> String {
        "{" + elements.map { element in
            guard let element else { return "NULL" }
            return "\"" + element.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }.joined(separator: ",") + "}"
    }

    /// The array literal of integers.
    public static func literal(_ elements: [Int64]) -> String {
        "{" + elements.map(String.init).joined(separator: ",") + "}"
    }
}
