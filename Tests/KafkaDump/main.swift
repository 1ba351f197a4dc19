// A chaos-run fixture: reads every partition of the topics in TG_TOPICS from the beginning and prints each record's
// event_id header, one a line, once at least TG_EXPECT distinct ids were seen (or TG_TIMEOUT_S passed, default 120,
// then exits 1 after printing what it has). Configured through the environment: TG_BOOTSTRAP, TG_TOPICS,
// TG_PARTITIONS, TG_EXPECT.
import Foundation
import RDKafka
import TestSupport

let environment = ProcessInfo.processInfo.environment
let topics = (environment["TG_TOPICS"] ?? "events").split(separator: ",").map(String.init)
let expected = Int(environment["TG_EXPECT"] ?? "") ?? 0
let timeout = Duration.seconds(Int(environment["TG_TIMEOUT_S"] ?? "") ?? 120)

func eventID(_ record: ConsumerRecord) -> String {
    record.headers.first { $0.name == "event_id" }?.value.map { String(decoding: $0, as: UTF8.self) } ?? "-"
}

let records = try await KafkaReader.readBack(bootstrap: environment["TG_BOOTSTRAP"] ?? "", topics: topics,
                                             partitions: Int32(environment["TG_PARTITIONS"] ?? "") ?? 6,
                                             timeout: timeout) { records in
    Set(records.lazy.map(eventID)).count >= expected
}
var output = ""
for record in records { output += eventID(record) + "\n" }
FileHandle.standardOutput.write(Data(output.utf8))
exit(Set(records.map(eventID)).count >= expected ? 0 : 1)
