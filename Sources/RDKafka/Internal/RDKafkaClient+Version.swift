import CLibRDKafka

extension RDKafkaClient {
    /// `rd_kafka_version_str()`: the version of the library loaded at run time, not of the headers.
    static var libraryVersion: String { String(cString: rd_kafka_version_str()) }
}
