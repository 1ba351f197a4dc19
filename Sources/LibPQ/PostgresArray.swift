/// Text forms of PostgreSQL arrays, for sending many values as one parameter (`unnest($1::text[])`).
public enum PostgresArray {
    /// The array literal `{"a","b",NULL}` with every element quoted and `"`/`\` escaped.
    public static func literal(_ elements: [String?]) -> String {
        // One pass over the bytes: a batch's claim builds these for every batch, and Foundation's
        // replacingOccurrences was a measurable part of a small batch's CPU.
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(2 + elements.reduce(0) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let element else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            for byte in element.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The array literal of integers.
    public static func literal(_ elements: [Int64]) -> String {
        var text = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { text += "," }
            text += String(element)
        }
        return text + "}"
    }
}
