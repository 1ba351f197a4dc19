/// The librdkafka this process runs with.
///
/// Tailgate builds against the system's librdkafka headers, but the library is found at run time, so
/// `LD_LIBRARY_PATH` can bring another (ABI-compatible) one: what was built against is not what runs.
public enum KafkaLibrary {
    /// The loaded library's version, e.g. `2.0.2`.
    public static var version: String { RDKafkaClient.libraryVersion }

    /// The loaded library's major and minor version, e.g. `(2, 16)`.
    public static var majorMinor: (major: Int, minor: Int) {
        let parts = version.split(separator: ".").map { Int($0.prefix { $0.isNumber }) ?? 0 }
        return (parts.first ?? 0, parts.dropFirst().first ?? 0)
    }
}
