import Foundation
import RDKafka
import Testing

@Suite struct KafkaLibraryTests {
    @Test func theVersionIsTheLoadedLibrarysNotTheHeaders() throws {
        // The library this process mapped, as the dynamic loader found it (LD_LIBRARY_PATH can change it).
        // (Read to the end: /proc files report a size of 0.)
        let maps = String(decoding: try #require(FileHandle(forReadingAtPath: "/proc/self/maps")).readDataToEndOfFile(), as: UTF8.self)
        let path = try #require(maps.split(separator: "\n").compactMap { $0.split(separator: " ").last }
            .first { $0.contains("librdkafka") }.map(String.init))
        let (major, minor) = KafkaLibrary.majorMinor
        #expect(KafkaLibrary.version.hasPrefix("\(major).\(minor)."))
        if path.hasPrefix("/usr/lib/") || path.hasPrefix("/lib/") {
            // Debian's package, which the build's headers come from.
            #expect((major, minor) == (2, 0), "\(KafkaLibrary.version) from \(path)")
        } else if let newer = ProcessInfo.processInfo.environment["TG_RDKAFKA_216_LIB"], path.hasPrefix(newer + "/") {
            // scripts/lib/tansu.sh's, on LD_LIBRARY_PATH.
            #expect((major, minor) == (2, 16), "\(KafkaLibrary.version) from \(path)")
        }
    }
}
