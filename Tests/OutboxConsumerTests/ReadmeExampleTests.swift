import Foundation
import Testing

/// The README's consumer example is the downstream package's source (which scripts/test builds), not a copy that
/// could drift.
@Suite struct ReadmeExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theReadmeShowsTheDownstreamPackagesExampleVerbatim() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let example = try String(contentsOf: Self.root.appendingPathComponent("Tests/DownstreamPackage/Sources/LikeCounter/main.swift"), encoding: .utf8)
        #expect(example.contains("try await consumer.run"))
        #expect(readme.contains("```swift\n" + example + "```\n"), "README's consumer example differs from Tests/DownstreamPackage/Sources/LikeCounter/main.swift")
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Tests/DownstreamPackage/Package.swift"), encoding: .utf8)
        #expect(manifest.contains(".product(name: \"OutboxConsumer\", package: \"Tailgate\")"))
        #expect(readme.contains(".product(name: \"OutboxConsumer\", package: \"tailgate\")"))
    }
}
