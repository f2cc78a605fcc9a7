// swift-tools-version:6.1
//
// Plexus — peer-to-peer decentralized learning for hospitals and research institutes.
//
// Dependencies point one way (see README, "Architecture"):
//
//   CSodium, CZstd                    system libraries (libsodium, libzstd)
//   PlexusCore                        value types shared by everything; no dependencies
//   PlexusCrypto                      every libsodium call: secure bytes, Ed25519, BLAKE2b
//   PlexusCodec                       delta codecs, zstd, the signed envelope, replay windows
//   PlexusTopology                    topology files: parse, validate, graph facts, generate, diff
//   PlexusLearning                    CSV data, models, optimizers, metrics, local training
//   PlexusPrivacy                     differential privacy: the Rényi accountant, noise calibration
//   PlexusTransport                   the secure peer-to-peer mesh: framing, handshake, sessions (NIO)
//   PlexusNode                        a peer node: the gossip instance over the mesh; metrics (swift-metrics,
//                                     exposed through swift-prometheus at /metrics)
//   plexus                            the command-line tool: argument parsing only
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "plexus",
    products: [
        .executable(name: "plexus", targets: ["plexus"]),
        .library(name: "PlexusCore", targets: ["PlexusCore"]),
        .library(name: "PlexusCrypto", targets: ["PlexusCrypto"]),
        .library(name: "PlexusCodec", targets: ["PlexusCodec"]),
        .library(name: "PlexusTopology", targets: ["PlexusTopology"]),
        .library(name: "PlexusLearning", targets: ["PlexusLearning"]),
        .library(name: "PlexusPrivacy", targets: ["PlexusPrivacy"]),
        .library(name: "PlexusGossip", targets: ["PlexusGossip"]),
        .library(name: "PlexusTransport", targets: ["PlexusTransport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The metrics layer (issue 17): swift-metrics types in the driver, Prometheus exposition.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"]), .brew(["zstd"])]
        ),
        .target(name: "PlexusCore", swiftSettings: swiftSettings),
        .target(name: "PlexusCrypto", dependencies: ["CSodium", "PlexusCore"], swiftSettings: swiftSettings),
        .target(
            name: "PlexusCodec",
            dependencies: ["CZstd", "PlexusCore", "PlexusCrypto"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlexusGossip",
            dependencies: ["PlexusCore", "PlexusCrypto", "PlexusCodec"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlexusSimulator",
            dependencies: ["PlexusCore", "PlexusCrypto", "PlexusGossip"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlexusLog",
            dependencies: ["PlexusCore", "PlexusGossip"],
            swiftSettings: swiftSettings
        ),
        .target(name: "PlexusViews", dependencies: ["PlexusCore", "PlexusLog"], swiftSettings: swiftSettings),
        .target(
            name: "PlexusTopology",
            dependencies: ["PlexusCore", "PlexusCrypto", "PlexusCodec", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: swiftSettings
        ),
        .target(name: "PlexusPrivacy", dependencies: ["PlexusCore"], swiftSettings: swiftSettings),
        // The model file states what a private plan spent (SavedModel's privacy.* keys).
        .target(name: "PlexusLearning", dependencies: ["PlexusCore", "PlexusPrivacy"], swiftSettings: swiftSettings),
        .target(
            name: "PlexusEngine",
            dependencies: [
                "PlexusCore", "PlexusCrypto", "PlexusCodec", "PlexusGossip", "PlexusSimulator", "PlexusLog",
                "PlexusLearning", "PlexusTopology", "PlexusPrivacy",
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlexusTransport",
            dependencies: [
                "PlexusCore", "PlexusCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PlexusNode",
            dependencies: [
                "PlexusCore", "PlexusCrypto", "PlexusCodec", "PlexusGossip", "PlexusLog", "PlexusLearning",
                "PlexusTopology", "PlexusEngine", "PlexusTransport", "PlexusPrivacy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "plexus",
            dependencies: [
                "PlexusCore", "PlexusCrypto", "PlexusCodec", "PlexusTopology", "PlexusLearning",
                "PlexusGossip", "PlexusSimulator", "PlexusLog", "PlexusViews", "PlexusEngine", "PlexusNode", "PlexusPrivacy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The fuzzing harness (README, "Fuzzing"): libFuzzer entry points when built with .ci/fuzz's
        // recipe, a corpus replayer otherwise. Not a product: nothing ships it.
        .executableTarget(
            name: "PlexusFuzz",
            dependencies: [
                "PlexusCore", "PlexusCrypto", "PlexusCodec", "PlexusGossip", "PlexusLearning", "PlexusLog",
                "PlexusNode", "PlexusTopology", "PlexusTransport",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlexusGossipTests",
            dependencies: ["PlexusGossip", "PlexusSimulator", "PlexusCodec", "PlexusCrypto", "PlexusCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "PlexusLogTests", dependencies: ["PlexusLog", "PlexusCore", "PlexusGossip"], swiftSettings: swiftSettings),
        .testTarget(name: "PlexusViewsTests", dependencies: ["PlexusViews", "PlexusLog"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PlexusEngineTests",
            dependencies: ["PlexusEngine", "PlexusTopology", "PlexusLearning", "PlexusLog", "PlexusCore", "PlexusSimulator", "PlexusGossip", "PlexusCrypto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "PlexusCryptoTests", dependencies: ["PlexusCrypto"], swiftSettings: swiftSettings),
        // NOT FOR PUBLIC CONSUMPTION: fixtures shared by test targets (the TCP forwarder, the
        // packet-level link emulator between network namespaces).
        .target(
            name: "PlexusTestKit",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Tests/PlexusTestKit",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlexusTransportTests",
            dependencies: [
                "PlexusTransport", "PlexusCore", "PlexusCrypto", "PlexusTestKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The node's own parts in process: its metrics through swift-metrics and swift-prometheus.
        .testTarget(
            name: "PlexusNodeTests",
            dependencies: [
                "PlexusNode", "PlexusCore", "PlexusLog", "PlexusTestKit",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // Runs the built `plexus` executable as a user would.
        .testTarget(
            name: "PlexusCLITests",
            dependencies: [
                "plexus", "PlexusCore", "PlexusCrypto", "PlexusEngine", "PlexusLearning", "PlexusLog", "PlexusNode", "PlexusTopology", "PlexusPrivacy",
                // The hostile peer (HostilePeer.swift): the real transport, envelopes and statistics messages.
                "PlexusTransport", "PlexusCodec", "PlexusGossip", "CZstd", "PlexusTestKit",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlexusCodecTests",
            dependencies: ["PlexusCodec", "PlexusCrypto", "PlexusCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlexusTopologyTests",
            dependencies: ["PlexusTopology", "PlexusCore", "PlexusCrypto"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlexusLearningTests",
            dependencies: ["PlexusLearning", "PlexusCore", "PlexusPrivacy"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PlexusPrivacyTests",
            dependencies: ["PlexusPrivacy", "PlexusCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
    ]
)
