// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "dwell",
    products: [
        .executable(name: "dwell", targets: ["dwell"]),
        .library(name: "DwellClient", targets: ["DwellClient"]),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev", "libuv1-dev"])]
        ),
        // Debian's http-parser ships no pkg-config file, so the module map links it by name.
        .systemLibrary(
            name: "CHTTPParser",
            providers: [.apt(["libhttp-parser-dev"])]
        ),
        // Strict JSON for request bodies: Foundation's parser accepts trailing commas.
        .systemLibrary(
            name: "CJansson",
            pkgConfig: "jansson",
            providers: [.apt(["libjansson-dev"])]
        ),
        .target(name: "CDwellShim"),
        .target(name: "DwellCore"),
        .target(name: "DwellEventLoop", dependencies: ["CLibUV", "CDwellShim"]),
        .target(name: "DwellHTTP", dependencies: ["DwellCore", "DwellEventLoop", "CLibUV", "CHTTPParser"]),
        .target(name: "DwellRedis", dependencies: ["DwellCore", "DwellEventLoop", "CLibUV", "CHiredis"]),
        .target(
            name: "DwellWorker",
            dependencies: ["DwellCore", "DwellEventLoop", "DwellHTTP", "DwellRedis", "CDwellShim", "CJansson"]
        ),
        .target(
            name: "DwellSupervisor",
            dependencies: ["DwellCore", "DwellEventLoop", "DwellRedis", "CLibUV", "CDwellShim"]
        ),
        .target(name: "DwellClient", dependencies: ["CHTTPParser", "CDwellShim"]),
        .executableTarget(
            name: "dwell",
            dependencies: [
                "CDwellShim", "DwellCore", "DwellEventLoop", "DwellWorker", "DwellSupervisor", "DwellClient",
            ]
        ),
        .testTarget(name: "DwellCoreTests", dependencies: ["DwellCore"]),
        .testTarget(name: "DwellHTTPTests", dependencies: ["DwellHTTP", "DwellEventLoop"]),
        .testTarget(name: "DwellRedisTests", dependencies: ["DwellRedis", "DwellEventLoop"]),
        .testTarget(name: "DwellIntegrationTests", dependencies: ["DwellClient", "DwellCore"]),
    ],
    swiftLanguageModes: [.v5]
)
