// libFuzzer entry point for the PGOutput decoder, built outside the package by scripts/fuzz together with the
// PGOutput sources (one module, so no import):
//     swiftc -sanitize=fuzzer,address -parse-as-library Sources/PGOutput/**/*.swift Tests/Fuzz/PGOutputFuzz.swift
//
// An input is a sequence of messages, each a big-endian UInt16 length and that many bytes, fed to one
// PGOutputDecoder (so relations learned early are used by later rows); each message is also tried as a replication
// frame and its text as an LSN. Decoding may fail with a typed error; it must never trap, leak or read out of
// bounds. The decoded rows are read column by column, as the connector does.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var decoder = PGOutputDecoder()
    var offset = 0
    while offset + 2 <= input.count {
        let length = Int(input[offset]) << 8 | Int(input[offset + 1])
        offset += 2
        let message = Array(input[offset..<min(input.count, offset + length)])
        offset += length
        exercise(message, decoder: &decoder)
    }
    return 0
}

private func exercise(_ bytes: [UInt8], decoder: inout PGOutputDecoder) {
    if case .xLogData(let data)? = try? ReplicationFrame.decode(bytes) {
        _ = try? decoder.decode(data.data)
    }
    _ = LSN(String(decoding: bytes, as: UTF8.self))
    guard let message = try? decoder.decode(bytes) else { return }
    let tuples: [(UInt32, TupleData)]
    switch message {
    case .insert(let insert): tuples = [(insert.relationID, insert.newTuple)]
    case .update(let update): tuples = [(update.relationID, update.newTuple)]
    default: tuples = []
    }
    for (relationID, tuple) in tuples {
        guard let row = try? decoder.row(relationID: relationID, tuple: tuple) else { continue }
        for column in row.relation.columns {
            _ = row[column.name]?.string
        }
    }
}
