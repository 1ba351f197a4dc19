import Foundation
import PGOutput
import Testing

@Suite struct PostgresTimestampTests {
    @Test(arguments: [
        (Int64(0), "2000-01-01T00:00:00.000000Z"),
        (1_500_000, "2000-01-01T00:00:01.500000Z"),
        (-1, "1999-12-31T23:59:59.999999Z"),
        (432_000_000_000_000 + 3_723_000_042, "2013-09-09T01:02:03.000042Z"),
        (-946_684_800_000_000, "1970-01-01T00:00:00.000000Z"),
    ] as [(Int64, String)])
    func rfc3339IsUTCWithMicroseconds(raw: Int64, expected: String) {
        #expect(PostgresTimestamp(rawValue: raw).rfc3339 == expected)
    }

    /// Every seventh day over two 400-year cycles (1600-2400), against Foundation's ISO 8601 formatter.
    @Test func rfc3339AgreesWithFoundationOnEveryDay() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        for day in stride(from: Int64(-146_097), to: 146_097, by: 7) {
            let raw = day * 86_400 * 1_000_000 + 45_296_000_000 // 12:34:56
            let timestamp = PostgresTimestamp(rawValue: raw)
            let expected = formatter.string(from: timestamp.date).replacingOccurrences(of: "Z", with: ".000000Z")
            if timestamp.rfc3339 != expected {
                Issue.record("day \(day): \(timestamp.rfc3339) != \(expected)")
                return
            }
        }
    }
}
