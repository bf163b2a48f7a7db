import DMAMemory
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO

@Suite("DMA regions: one mapping per region, unmap before munmap, memlock, quarantine")
struct DMARegionTests {
    @Test("memfd memory is mapped by file, anonymous memory by address; pins come and go with the region")
    func mapFileOrMap() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, ioas in
            do {
                let region = try manager.makeRegion(length: 1 << 20, backing: .exactly(.memfd))
                let byFile = region.mappedByFile
                #expect(byFile)
                #expect(kernel.trace.contains { $0.name == "IOMMU_IOAS_MAP_FILE" && $0.result == nil })
                #expect(kernel.pinnedPageCount == 256)
                #expect(manager.iova(of: region.address + 0x1234) == IOVA(region.iova.rawValue + 0x1234))
                #expect(manager.address(of: IOVA(region.iova.rawValue + 0x10)) == region.address + 0x10)
                // What the device writes at the IOVA is what the CPU reads at the address.
                #expect(kernel.deviceWrite(iommufd: ioas.iommufd.fileDescriptor.rawValue, ioas: ioas.id.rawValue, iova: region.iova.rawValue + 8, bytes: [1, 2, 3]))
                #expect(region.address.load(fromByteOffset: 8, as: UInt8.self) == 1)
            }
            #expect(kernel.pinnedPageCount == 0)
            kernel.clearTrace()
            do {
                let region = try manager.makeRegion(length: 1 << 20, backing: .exactly(.anonymous(transparentHugePages: false)))
                let byFile = region.mappedByFile
                #expect(!byFile)
                #expect(kernel.trace.contains { $0.name == "IOMMU_IOAS_MAP" && $0.result == nil })
            }
        }
    }

    @Test("a 1 GiB hugepage region on node 1: one MAP_FILE at a 1 GiB-aligned IOVA, and the domain points at its pages")
    func gigantic() throws {
        let kernel = memoryMachine(hugePages: [oneGiB: 1], nodes: 2, memlock: nil)
        do {
            let iommufd = try IOMMUFD(system: kernel)
            let ioas = try iommufd.allocateIOAS()
            let device = try ioas.selftestAttachMockDomain()
            let manager = try DMAMemoryManager(addressSpace: .iommufd(ioas))
            do {
                let region = try manager.makeRegion(length: Int(oneGiB), backing: .exactly(.hugetlbMemfd(.huge1GiB)), placement: .node(1, strict: true))
                #expect(region.mappedByFile && region.iova.rawValue % oneGiB == 0)
                #expect(region.memory.placement.isOnRequestedNode, "\(region.memory.placement)")
                #expect(kernel.freeHugePages(oneGiB) == 0)
                for offset in [0, Int(oneGiB / 2), Int(oneGiB) - 4096] {
                    try iommufd.selftestCheckMap(device, iova: IOVA(region.iova.rawValue + UInt64(offset)), length: 4096, address: region.address + offset)
                }
                #expect("one page off is not what the domain maps: EINVAL") {
                    try iommufd.selftestCheckMap(device, iova: region.iova, length: 4096, address: region.address + 4096)
                } throws: { ($0 as? IOMMUError)?.errno == .invalidArgument }
            }
            #expect(kernel.freeHugePages(oneGiB) == 1, "the page goes back with the region")
            try iommufd.destroy(device.selftestID)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    @Test("dropping a region unmaps the IOVA first, then the memory, then closes the file")
    func teardownOrder() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            let region = try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd))
            kernel.clearTrace()
            _ = consume region
            #expect(kernel.trace.map(\.name) == ["IOMMU_IOAS_UNMAP", "munmap", "close"])
        }
    }

    @Test("release() reports the kernel's error and the IOVA is then never reused")
    func releaseReportsError() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, ioas in
            let region = try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd))
            let iova = region.iova
            kernel.failNthCall(1, with: .resourceBusy, operation: "IOMMU_IOAS_UNMAP")
            var released: DMAMemoryError?
            do throws(DMAMemoryError) { try region.release() } catch { released = error }
            #expect(released != nil)
            manager.devicesAreQuiescent()
            let next = try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd))
            #expect(next.iova != iova, "an IOVA that may still be mapped is not handed out again")
            _ = try ioas.unmapAll()  // what the failed unmap left
        }
    }

    @Test("a memlock limit below the region fails before any memory is made, and names the fix")
    func memlockTooLow() throws {
        let kernel = memoryMachine(memlock: 1 << 20)
        try withManager(kernel) { manager, _ in
            kernel.clearTrace()
            #expect {
                _ = try manager.makeRegion(length: 4 << 20, backing: .exactly(.memfd))
            } throws: { error in
                guard case DMAMemoryError.memoryLockLimit(needed: 4 << 20, limit: 1 << 20, maximum: 1 << 20) = error else { return false }
                return "\(error)".contains("ulimit -l") && "\(error)".contains("CAP_IPC_LOCK")
            }
            #expect(!kernel.trace.contains { $0.name == "mmap" || $0.name == "memfd_create" })
        }
    }

    @Test("a CAP_IPC_LOCK process is not held to RLIMIT_MEMLOCK: the mock's /proc/self/status says so (CapEff bit 14), and a region beyond the limit is made")
    func ipcLockLiftsTheLimit() throws {
        var configuration = MockKernel.Configuration()
        configuration.memlockLimit = 1 << 20
        configuration.memlockMaximum = 1 << 20
        configuration.hasIPCLock = true
        let kernel = MockKernel(configuration: configuration)
        #expect(ProcessCapabilities(system: kernel)?.hasIPCLock == true)
        try withManager(kernel) { manager, _ in
            let region = try manager.makeRegion(length: 4 << 20, backing: .exactly(.memfd))
            #expect(region.length == 4 << 20)
            let status = String(decoding: try kernel.readFile("/proc/self/status"), as: UTF8.self)
            #expect(status.contains("CapEff:\t0000000000004000"))
        }
    }

    @Test("a map the kernel refuses for memlock (pins elsewhere in the process) is the memlock error, memory freed")
    func memlockAtMap() throws {
        let kernel = memoryMachine(memlock: 2 << 20)
        try withManager(kernel) { manager, _ in
            kernel.failNthCall(1, with: .noMemory, operation: "IOMMU_IOAS_MAP_FILE")
            #expect {
                _ = try manager.makeRegion(length: 1 << 20, backing: .exactly(.memfd))
            } throws: { error in
                guard case DMAMemoryError.memoryLockLimit(needed: 1 << 20, limit: 2 << 20, _) = error else { return false }
                return true
            }
            #expect(kernel.leaks.memoryMappings == 0 && manager.mappedBytes == 0)
        }
    }

    @Test("freed IOVAs stay quarantined until the devices are declared quiescent")
    func quarantine() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            var first: IOVA
            do {
                let region = try manager.makeRegion(length: 2 << 20, backing: .exactly(.memfd))
                first = region.iova
                #expect(first.rawValue % (2 << 20) == 0, "2 MiB regions are 2 MiB aligned for large IOMMU pages")
            }
            #expect(manager.quarantinedBytes == 2 << 20)
            var second: IOVA
            do {
                let region = try manager.makeRegion(length: 2 << 20, backing: .exactly(.memfd))
                second = region.iova
                #expect(second != first)
            }
            manager.devicesAreQuiescent()
            #expect(manager.quarantinedBytes == 0)
            let reused = try manager.makeRegion(length: 2 << 20, backing: .exactly(.memfd))
            #expect(reused.iova == first || reused.iova == second, "a quarantined IOVA is recycled after quiescence")
        }
    }

    @Test("a device's DMA mask bounds its IOVAs, and the space runs out with a clear error")
    func dmaMask() throws {
        let kernel = memoryMachine(memlock: nil)
        // The selftest mock domain's aperture starts at 16 MiB; a 25-bit mask leaves [16 MiB, 32 MiB).
        try withManager(kernel, dmaMask: 0x1ff_ffff) { manager, _ in
            let region = try manager.makeRegion(length: 4 << 20, backing: .exactly(.memfd))
            #expect(region.iova.rawValue + UInt64(region.length) - 1 <= 0x1ff_ffff)
            // Regions made and dropped at once: their IOVAs wait in quarantine, so the 16 MiB space runs out.
            var failure: DMAMemoryError?
            var regions = 0
            while failure == nil && regions < 8 {
                do { _ = try manager.makeRegion(length: 4 << 20, backing: .exactly(.memfd)).iova; regions += 1 } catch let error as DMAMemoryError { failure = error }
            }
            #expect(regions == 3, "16 MiB holds four 4 MiB regions; one is live")
            #expect(failure.map { "\($0)".contains("quarantine") } == true)
            guard case .iovaSpace(.exhausted)? = failure else { Issue.record("expected exhaustion, got \(String(describing: failure))"); return }
            #expect(kernel.leaks.memoryMappings == 1, "only the live region's memory is left")
        }
    }

    @Test("every failing call while making a region leaves nothing behind")
    func failEveryCall() throws {
        let clean = memoryMachine()
        var calls: [String] = []
        try withManager(clean) { manager, _ in
            clean.clearTrace()
            let region = try manager.makeRegion(length: 1 << 20, backing: .exactly(.memfd), placement: .node(0, strict: true))
            calls = clean.trace.map(\.name)  // the calls that make it, not the ones that drop it
            _ = consume region
        }
        #expect(calls.contains("IOMMU_IOAS_MAP_FILE"))
        for (index, name) in calls.enumerated() where name != "munmap" {
            let kernel = memoryMachine()
            try withManager(kernel) { manager, _ in
                kernel.failNthCall(index + 1, with: .noMemory)
                _ = try? manager.makeRegion(length: 1 << 20, backing: .exactly(.memfd), placement: .node(0, strict: true))
                #expect(kernel.pinnedPageCount == 0 && manager.mappedBytes == 0, "call \(index + 1) (\(name)): pinned \(kernel.pinnedPageCount), mapped \(manager.mappedBytes)")
            }
        }
    }
}
