import LibPQ
import TestSupport
import Testing

@Suite struct PostgresArrayTests {
    @Test func literalsRoundTripThroughTheServer() async throws {
        let postgres = try await TestPostgres.shared()
        let db = try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "array")))
        let texts: [String?] = ["plain", "with \"quotes\"", "back\\slash", "a,b", "{braces}", "", nil, "NULL", "ünïcödé ✓", " spaced "]
        #expect(PostgresArray.literal(["a\"b", nil]) == #"{"a\"b",NULL}"#)
        let rows = try await db.query("SELECT t, t IS NULL AS missing FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n",
                                      [PostgresArray.literal(texts)]).rows
        #expect(rows.map { $0.bool("missing") == true ? nil : $0["t"] } == texts)
        let numbers: [Int64] = [0, -1, Int64.max, Int64.min]
        #expect(PostgresArray.literal(numbers) == "{0,-1,9223372036854775807,-9223372036854775808}")
        let sum = try await db.query("SELECT array_length($1::bigint[], 1) AS n", [PostgresArray.literal(numbers)])
        #expect(sum.first?.int("n") == 4)
        #expect(PostgresArray.literal([String?]()) == "{}")
        await db.close()
    }
}
