// swift-tools-version:6.0
// A service as a downstream team writes it: its own package, depending on Tailgate. The README's consumer example is
// Sources/LikeCounter/main.swift, verbatim; scripts/test builds this package so the example keeps compiling.
import PackageDescription

let package = Package(
    name: "LikeCounter",
    dependencies: [
        // A real service writes .package(url: "https://github.com/…/tailgate.git", from: "…") instead.
        .package(name: "Tailgate", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "LikeCounter", dependencies: [.product(name: "OutboxConsumer", package: "Tailgate")]),
    ]
)
