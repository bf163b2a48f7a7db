// swift-tools-version:6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-iommufd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IOMMUFD", targets: ["IOMMUFD"]),
        .library(name: "IOMMUFDSystem", targets: ["IOMMUFDSystem"]),
        .library(name: "MockKernel", targets: ["MockKernel"]),
        .library(name: "VFIO", targets: ["VFIO"]),
        .library(name: "DMAMemory", targets: ["DMAMemory"]),
        .library(name: "Edu", targets: ["Edu"]),
        .library(name: "NVMe", targets: ["NVMe"]),
        .library(name: "E1000E", targets: ["E1000E"]),
        .executable(name: "iommufd-probe", targets: ["iommufd-probe"]),
        .executable(name: "iommufd-bench", targets: ["iommufd-bench"]),
        .executable(name: "nvme-identify", targets: ["nvme-identify"]),
        .executable(name: "nvme-perf", targets: ["nvme-perf"]),
        .executable(name: "e1000e-pktgen", targets: ["e1000e-pktgen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Latency percentiles for nvme-perf.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // `swift package generate-documentation` for the DocC catalogs (.ci/docs builds them).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .target(
            name: "CIOMMUFD",
            path: "CShims/CIOMMUFD",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // The seam: SystemInterface, LinuxSystem (the only code that calls the kernel),
        // LockedState, resource limits, the MMIO observer, and the uAPI vocabulary every
        // layer shares (the ioctl descriptor table, IOVA). MockKernel depends on this, not
        // on the typed layer it is used to test.
        .target(
            name: "IOMMUFDSystem",
            dependencies: ["CIOMMUFD", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        .target(
            name: "IOMMUFD",
            dependencies: [
                "CIOMMUFD", "IOMMUFDSystem",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Strict memory safety: every unsafe construct in the core is marked `unsafe`, and
            // the maps that take a raw address are `@unsafe` with their Safety contract.
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        .target(
            name: "VFIO",
            dependencies: ["IOMMUFD", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        .systemLibrary(
            name: "CLibPCI",
            path: "CShims/CLibPCI",
            pkgConfig: "libpci",
            providers: [.apt(["libpci-dev"])]
        ),
        .target(
            name: "PCIDatabase",
            dependencies: ["CLibPCI", "IOMMUFD", "VFIO", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DMAMemory",
            dependencies: ["IOMMUFD", "VFIO", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        // A user-space driver for QEMU's edu device (issue 17): BAR registers and DMA engine.
        .target(
            name: "Edu",
            dependencies: ["IOMMUFD", "VFIO"],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        // A user-space NVMe driver (issue 17): controller bring-up, Identify, I/O with PRPs.
        .target(
            name: "NVMe",
            dependencies: ["IOMMUFD", "VFIO", "DMAMemory"],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        // A user-space driver for the 82574L (e1000e) QEMU emulates (issue 17).
        .target(
            name: "E1000E",
            dependencies: ["IOMMUFD", "VFIO", "DMAMemory"],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        .target(
            name: "ProbeKit",
            dependencies: ["IOMMUFD", "VFIO", "PCIDatabase", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MockKernel",
            dependencies: ["IOMMUFDSystem", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strictSettings + [.strictMemorySafety()]
        ),
        .executableTarget(
            name: "iommufd-probe",
            dependencies: [
                "IOMMUFD", "MockKernel", "ProbeKit", "VFIO", "PCIDatabase",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "tools/iommufd-probe",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "nvme-identify",
            dependencies: [
                "DriverToolOptions", "IOMMUFD", "MockKernel", "NVMe", "VFIO", "DMAMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/nvme-identify",
            swiftSettings: strictSettings
        ),
        // What the driver tools share: the path, backend and JSON options.
        .target(
            name: "DriverToolOptions",
            dependencies: ["IOMMUFD", "MockKernel", "VFIO", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/DriverToolOptions",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "nvme-perf",
            dependencies: [
                "DriverToolOptions", "IOMMUFD", "MockKernel", "NVMe", "VFIO", "DMAMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "tools/nvme-perf",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "e1000e-pktgen",
            dependencies: [
                "DriverToolOptions", "IOMMUFD", "MockKernel", "E1000E", "VFIO", "DMAMemory",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/e1000e-pktgen",
            swiftSettings: strictSettings
        ),
        .target(
            name: "CBenchBaseline",
            dependencies: ["CIOMMUFD"],
            path: "tools/iommufd-bench/CBenchBaseline"
        ),
        .executableTarget(
            name: "iommufd-bench",
            dependencies: [
                "IOMMUFD", "CBenchBaseline", "CIOMMUFD", "DMAMemory", "MockKernel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "tools/iommufd-bench/Sources",
            // The pool's get/put are @inlinable, so they are compiled here, for this CPU,
            // as DPDK's inline rte_mempool code is compiled into the baseline program with
            // -march=native. (The IOVA allocator is not inlined: it and its C reference are
            // both built for baseline x86-64.)
            // IOMMUFD_BENCH_PORTABLE=1 builds for baseline x86-64 instead, for a guest CPU
            // that lacks the host's extensions (the VM lane's TCG guest).
            swiftSettings: strictSettings + (Context.environment["IOMMUFD_BENCH_PORTABLE"] == "1"
                ? [] : [.unsafeFlags(["-target-cpu", "native"], .when(configuration: .release))])
        ),
        .testTarget(
            name: "DMAMemoryTests",
            dependencies: ["DMAMemory", "Edu", "IOMMUFD", "MockKernel", "VFIO", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CIOMMUFDTests",
            dependencies: ["CIOMMUFD"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "IOMMUFDTests",
            dependencies: ["IOMMUFD", "MockKernel", "Scenarios", "ProbeKit", "VFIO", "DMAMemory", "Edu", "NVMe", "E1000E", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Scenarios",
            dependencies: ["IOMMUFD", "VFIO", "MockKernel", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system")],
            path: "hw-tests/Scenarios",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "iommufd-scenarios",
            dependencies: [
                "Scenarios", "IOMMUFD", "MockKernel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "hw-tests/iommufd-scenarios",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HardwareTests",
            dependencies: ["IOMMUFD", "VFIO", "DMAMemory", "Edu", "NVMe", "E1000E", "Scenarios", "MockKernel", "CIOMMUFD", .product(name: "SystemPackage", package: "swift-system")],
            path: "hw-tests/HardwareTests",
            swiftSettings: strictSettings
        ),
    ]
)
