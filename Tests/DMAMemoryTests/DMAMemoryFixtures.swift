import DMAMemory
@_spi(Selftest) import IOMMUFD
import MockKernel
import VFIO
import Testing

let twoMiB: UInt64 = 2 << 20
let oneGiB: UInt64 = 1 << 30

/// A modelled machine for the pinned-memory manager: hugepage pools, NUMA nodes, a memlock limit.
func memoryMachine(hugePages: [UInt64: Int] = [:], hugetlbfs: [String: UInt64] = [:], nodes: Int = 1,
                   memlock: UInt64? = 64 << 20) -> MockKernel {
    var configuration = MockKernel.Configuration()
    configuration.hugePages = hugePages
    configuration.hugetlbfsMounts = hugetlbfs
    configuration.numaNodes = nodes
    configuration.memlockLimit = memlock
    configuration.memlockMaximum = memlock
    if nodes > 1 { configuration.files["/sys/devices/system/node/online"] = Array("0-\(nodes - 1)\n".utf8) }
    return MockKernel(configuration: configuration)
}

/// An IOAS with a selftest mock device attached, so mappings are pinned and charged,
/// and a manager over it. `body` runs, then everything is dropped and the leak oracle checked.
func withManager(_ kernel: MockKernel, dmaMask: UInt64 = .max, _ body: (DMAMemoryManager, IOAS) throws -> Void) throws {
    do {
        let iommufd = try IOMMUFD(system: kernel)
        let ioas = try iommufd.allocateIOAS()
        let device = try ioas.selftestAttachMockDomain()
        let manager = try DMAMemoryManager(addressSpace: .iommufd(ioas), dmaMask: dmaMask)
        try body(manager, ioas)
        _ = device
    }
    #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
}

/// Collects fallbacks reported by a policy.
final class FallbackLog: @unchecked Sendable {
    private(set) var entries: [BackingFallback] = []
    func record(_ fallback: BackingFallback) { entries.append(fallback) }
}

/// No silent real kernel: memory for a manager comes from the system its address space
/// talks to, never from a default `LinuxSystem`.
@Suite("DMA memory takes its system from the address space")
struct DMAMemorySystemTests {
    @Test("a manager over a mock IOAS makes its memory in the mock (memfd_create, mmap and the map all in its trace)")
    func managerUsesTheAddressSpacesSystem() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            kernel.clearTrace()
            let region = try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd))
            let names = kernel.trace.map(\.name)
            #expect(names.contains("memfd_create") && names.contains("mmap") && names.contains(IOMMUOperation.ioasMapFile.name), "\(names)")
            #expect(kernel.leaks.isEmpty == false, "the region lives in the mock while it exists")
            _ = consume region
        }
    }
}
