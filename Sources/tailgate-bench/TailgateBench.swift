import Foundation

/// `tailgate-bench`: the contenders `scripts/bench` runs and compares. Not a product; each subcommand prints one
/// JSON object of measurements on standard output.
///
///     tailgate-bench connector --config FILE --state-dir DIR --expect N [--discard]
///     tailgate-bench produce --bootstrap B --expect N [--max-in-flight 20000]
///     tailgate-bench write --conninfo C --table T --rate EVENTS_PER_S --seconds S
///     tailgate-bench poll --conninfo C --table T --bootstrap B --interval-ms I --expect N [--batch 1000]
///     tailgate-bench consume --conninfo C --bootstrap B --topics A,B --expect N --mode exactly-once --batch K
///     tailgate-bench consume --conninfo C --bootstrap B --topics A,B --expect N --mode plain
@main
enum TailgateBench {
    static func main() async {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: tailgate-bench connector|produce|write|poll|consume --option value …\n".utf8))
            exit(64)
        }
        do {
            let options = try BenchArguments(arguments.dropFirst(2))
            switch arguments[1] {
            case "connector": try await ConnectorBench.run(options)
            case "write": try await FixedRateWriter.run(options)
            case "poll": try await PollingRelay.run(options)
            case "consume": try await ConsumerBench.run(options)
            case "produce": try await ProduceOnlyBench.run(options)
            default: throw BenchError("unknown subcommand \(arguments[1])")
            }
        } catch {
            FileHandle.standardError.write(Data("tailgate-bench \(arguments[1]): \(error)\n".utf8))
            exit(1)
        }
    }
}
