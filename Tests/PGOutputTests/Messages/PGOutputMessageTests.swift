import Testing
@testable import PGOutput

/// Each message kind decoded from bytes a real PostgreSQL 15 sent (see `scripts/capture-fixtures`).
@Suite struct PGOutputMessageTests {
    static let items: UInt32 = 0x4007
    static let fullItems: UInt32 = 0x400E
    static let mood: UInt32 = 0x4001

    func decode(_ name: String, inStream: Bool = false) throws -> PGOutputMessage {
        try PGOutputMessage.decode(Fixture.bytes(name), inStream: inStream)
    }

    static func t(_ text: String) -> TupleData.Value { .text(Array(text.utf8)) }

    @Test func begin() throws {
        let message = try decode("begin")
        guard case .begin(let begin) = message else { Issue.record("got \(message)"); return }
        #expect(begin.finalLSN == LSN("0/15302D0"))
        #expect(begin.xid == 0x2DA)
        #expect(begin.commitTime.rawValue == 0x0003_0415_8246_08D6)
        #expect(message.id == .begin)
    }

    @Test func commit() throws {
        #expect(try decode("commit") == .commit(Commit(flags: 0, commitLSN: LSN("0/15302D0")!, endLSN: LSN("0/1530300")!,
                                                       commitTime: PostgresTimestamp(rawValue: 0x0003_0415_8246_08D6))))
    }

    @Test func origin() throws {
        #expect(try decode("origin") == .origin(Origin(commitLSN: LSN("0/AB12CD34")!, name: "upstream")))
    }

    @Test func relation() throws {
        let expected = Relation(id: Self.items, namespace: "public", name: "items", replicaIdentity: .default, columns: [
            .init(isKey: true, name: "id", typeOID: 23, typeModifier: -1),
            .init(isKey: false, name: "name", typeOID: 25, typeModifier: -1),
            .init(isKey: false, name: "feeling", typeOID: Self.mood, typeModifier: -1),
            .init(isKey: false, name: "big", typeOID: 25, typeModifier: -1),
            .init(isKey: false, name: "data", typeOID: 17, typeModifier: -1),
        ])
        #expect(try decode("relation") == .relation(expected))
    }

    @Test func type() throws {
        #expect(try decode("type") == .type(TypeMessage(id: Self.mood, namespace: "public", name: "mood")))
    }

    @Test func insertWithTextTuple() throws {
        #expect(try decode("insert") == .insert(Insert(relationID: Self.items, newTuple: TupleData(values: [
            Self.t("1"), Self.t("first"), Self.t("happy"), .null, Self.t("\\x00ff10"),
        ]))))
    }

    @Test func insertWithBinaryTuple() throws {
        #expect(try decode("insert-binary") == .insert(Insert(relationID: Self.items, newTuple: TupleData(values: [
            .binary([0, 0, 0, 1]), .binary(Array("first".utf8)), .binary(Array("happy".utf8)), .null, .binary([0x00, 0xFF, 0x10]),
        ]))))
    }

    @Test func insertWithToastedValue() throws {
        guard case .insert(let insert) = try decode("insert-toast") else { Issue.record("not an insert"); return }
        guard case .text(let big) = insert.newTuple.values[3] else { Issue.record("big not text"); return }
        #expect(big.count == 12_800)
        #expect(Array(big.prefix(32)).utf8String == "c4ca4238a0b923820dcc509a6f75849b") // md5('1')
    }

    @Test func updateWithoutOldTuple() throws {
        #expect(try decode("update-simple") == .update(Update(relationID: Self.items, old: nil, newTuple: TupleData(values: [
            Self.t("1"), Self.t("renamed"), Self.t("happy"), .null, Self.t("\\x00ff10"),
        ]))))
    }

    @Test func updateWithKeyTuple() throws {
        #expect(try decode("update-key") == .update(Update(
            relationID: Self.items,
            old: OldTuple(kind: .key, tuple: TupleData(values: [Self.t("1"), .null, .null, .null, .null])),
            newTuple: TupleData(values: [Self.t("2"), Self.t("renamed"), Self.t("happy"), .null, Self.t("\\x00ff10")]))))
    }

    @Test func updateWithOldTuple() throws {
        #expect(try decode("update-old") == .update(Update(
            relationID: Self.fullItems,
            old: OldTuple(kind: .full, tuple: TupleData(values: [Self.t("1"), Self.t("one")])),
            newTuple: TupleData(values: [Self.t("1"), Self.t("uno")]))))
    }

    @Test func updateWithUnchangedToast() throws {
        #expect(try decode("update-unchanged-toast") == .update(Update(relationID: Self.items, old: nil, newTuple: TupleData(values: [
            Self.t("3"), Self.t("toast kept"), Self.t("ok"), .unchangedToast, .null,
        ]))))
    }

    @Test func deleteWithKey() throws {
        #expect(try decode("delete-key") == .delete(Delete(relationID: Self.items, old: OldTuple(
            kind: .key, tuple: TupleData(values: [Self.t("2"), .null, .null, .null, .null])))))
    }

    @Test func deleteWithOldTuple() throws {
        #expect(try decode("delete-old") == .delete(Delete(relationID: Self.fullItems, old: OldTuple(
            kind: .full, tuple: TupleData(values: [Self.t("1"), Self.t("uno")])))))
    }

    @Test func truncate() throws {
        #expect(try decode("truncate") == .truncate(Truncate(options: [.cascade, .restartIdentity], relationIDs: [Self.items, Self.fullItems])))
    }

    @Test func logicalMessages() throws {
        guard case .message(let transactional) = try decode("message-transactional"),
              case .message(let immediate) = try decode("message-non-transactional")
        else { Issue.record("not messages"); return }
        #expect(transactional.isTransactional && !immediate.isTransactional)
        #expect(transactional.prefix == "tailgate.test" && immediate.prefix == "tailgate.test")
        #expect(transactional.content.utf8String == "transactional hello")
        #expect(immediate.content.utf8String == "non-transactional hello")
        #expect(transactional.xid == nil)
    }

    @Test func streamMessages() throws {
        #expect(try decode("stream-start") == .streamStart(StreamStart(xid: 0x2E6, isFirstSegment: true)))
        #expect(try decode("stream-stop") == .streamStop)
        #expect(try decode("stream-abort") == .streamAbort(StreamAbort(xid: 0x2E6, subtransactionXID: 0x2E6)))
        #expect(try decode("stream-commit") == .streamCommit(StreamCommit(
            xid: 0x2E7, flags: 0, commitLSN: LSN("0/1568418")!, endLSN: LSN("0/1568448")!,
            commitTime: PostgresTimestamp(rawValue: 0x0003_0415_8246_6FFE))))
    }

    @Test func changesInsideStreamBlocksCarryTheirXID() throws {
        guard case .insert(let insert) = try decode("stream-insert", inStream: true),
              case .relation(let relation) = try decode("stream-relation", inStream: true)
        else { Issue.record("wrong kinds"); return }
        #expect(insert.xid == 0x2E6 && insert.relationID == Self.items)
        #expect(insert.newTuple.values[1] == Self.t("bulk"))
        #expect(relation.xid == 0x2E6 && relation.name == "items")
        // The same bytes read as outside a block are misaligned and must fail cleanly, not trap.
        #expect(throws: PGOutputError.self) { try decode("stream-insert", inStream: false) }
    }
}
