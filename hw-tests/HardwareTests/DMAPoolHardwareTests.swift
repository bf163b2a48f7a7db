import Edu
import DMAMemory
import Foundation
@_spi(Selftest) import IOMMUFD
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// The pinned-memory manager on a real IOMMU: a hugepage-backed pool, and the edu
    /// device copying into and out of its buffers.
    @Suite("Hardware: DMA buffer pool with edu", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason), .serialized)
    struct DMAPoolHardwareTests {
        static let paths: [VFIODevice.Path] = Hardware.hasLegacyContainer ? [.iommufdCdev, .legacyGroup] : [.iommufdCdev]

        @Test("a 2 MiB hugepage pool (MAP_FILE on iommufd, MAP_DMA on type1): edu DMAs into and out of pool buffers, every byte checked",
              arguments: paths)
        func eduThroughPool(path: VFIODevice.Path) throws {
            let pool2M = HugePagePool.read(.huge2MiB, system: LinuxSystem())
            try #require((pool2M?.available ?? 0) >= 1, "the VM lane reserves 2 MiB hugepages (guest-init); found \(String(describing: pool2M))")
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(path))
            // edu reaches only the first 256 MiB of IOVA space.
            let manager = try DMAMemoryManager(addressSpace: owned.addressSpace, dmaMask: EduDevice.addressLimit - 1)
            let node = try? PCIFunction(address).numaNode
            let pool = try DMABufferPool(manager: manager, bufferSize: 4096, count: 256, alignment: 4096,
                                         backing: .exactly(.hugetlbMemfd(.huge2MiB)), placement: .deviceNode(node ?? nil))
            let byFile = pool.region.mappedByFile
            #expect(byFile == (path == .iommufdCdev), "memfd memory is mapped by file on iommufd")
            #expect(pool.region.memory.fallbacks.isEmpty)
            #expect(pool.region.iova.rawValue % (2 << 20) == 0 && pool.region.iova.rawValue + UInt64(pool.region.length) <= EduDevice.addressLimit)
            #expect(pool.region.memory.placement.unplacedPages == 0, "\(pool.region.memory.placement)")

            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            var cache = pool.makeCache(size: 8)
            let count = Int(EduDevice.maximumTransfer)
            for round in 0..<4 {
                guard let source = cache.get(), let destination = cache.get() else { Issue.record("pool empty"); return }
                #expect(pool.iova(of: source.address) == source.iova && manager.iova(of: destination.address) == destination.iova)
                for index in 0..<count { source.address.storeBytes(of: UInt8(truncatingIfNeeded: index &* 31 &+ round), toByteOffset: index, as: UInt8.self) }
                destination.bytes.initializeMemory(as: UInt8.self, repeating: 0)
                try edu.copyToDevice(from: source.iova, count: UInt64(count))
                try edu.copyToHost(to: destination.iova, count: UInt64(count))
                var mismatches = 0
                for index in 0..<count where destination.address.load(fromByteOffset: index, as: UInt8.self) != UInt8(truncatingIfNeeded: index &* 31 &+ round) {
                    mismatches += 1
                }
                #expect(mismatches == 0, "round \(round): \(mismatches) of \(count) bytes differ (\(path))")
                cache.put(source)
                cache.put(destination)
            }
            // Quiesce, then the pool's region unmaps (IOVA before memory), then IOVAs are recycled.
            try owned.device.setBusMaster(false)
            cache.flushAll()
            #expect(pool.availableCount == 256)
            _ = consume cache
            manager.devicesAreQuiescent()
        }
        @Test("a pool placed strictly on NUMA node 1: every page is there (move_pages), and edu DMAs through it",
              .enabled(if: Hardware.numaNodes.count >= 2, "one NUMA node here; the VM lane boots two"))
        func eduThroughNodeOnePool() throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            let manager = try DMAMemoryManager(addressSpace: owned.addressSpace, dmaMask: EduDevice.addressLimit - 1)
            let pool = try DMABufferPool(manager: manager, bufferSize: 4096, count: 64, alignment: 4096,
                                         backing: .exactly(.memfd), placement: .node(1, strict: true))
            let placement = pool.region.memory.placement
            #expect(placement.isOnRequestedNode && placement.pagesPerNode == [1: 64] && placement.unplacedPages == 0, "\(placement)")
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            guard let source = pool.get(), let destination = pool.get() else { Issue.record("pool empty"); return }
            let count = Int(EduDevice.maximumTransfer)
            for index in 0..<count { source.address.storeBytes(of: UInt8(truncatingIfNeeded: index &* 7 &+ 1), toByteOffset: index, as: UInt8.self) }
            destination.bytes.initializeMemory(as: UInt8.self, repeating: 0)
            try edu.copyToDevice(from: source.iova, count: UInt64(count))
            try edu.copyToHost(to: destination.iova, count: UInt64(count))
            #expect(memcmp(source.address, destination.address, count) == 0, "the bytes edu copied back differ")
            try owned.device.setBusMaster(false)
            pool.put(source)
            pool.put(destination)
            manager.devicesAreQuiescent()
        }

        @Test("a 1 GiB hugepage region: one MAP_FILE at a 1 GiB-aligned IOVA, and the IOMMU domain points at its pages",
              .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
        func giganticRegion() throws {
            let pool1G = HugePagePool.read(.huge1GiB, system: LinuxSystem())
            try #require((pool1G?.available ?? 0) >= 1, "the VM lane reserves one 1 GiB hugepage at boot (hw-tests/vm/run); found \(String(describing: pool1G))")
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            // The selftest mock domain's aperture is [16 MiB, 2 GiB): room for one 1 GiB-aligned GiB.
            let device = try ioas.selftestAttachMockDomain()
            let manager = try DMAMemoryManager(addressSpace: .iommufd(ioas))
            do {
                let node = Hardware.numaNodes.count >= 2 ? 1 : 0
                let region = try manager.makeRegion(length: 1 << 30, backing: .exactly(.hugetlbMemfd(.huge1GiB)), placement: .node(node, strict: true))
                #expect(region.mappedByFile && region.iova.rawValue % (1 << 30) == 0)
                #expect(region.memory.placement.isOnRequestedNode, "\(region.memory.placement)")
                for offset in [0, 1 << 29, (1 << 30) - 4096] {
                    try iommufd.selftestCheckMap(device, iova: IOVA(region.iova.rawValue + UInt64(offset)), length: 4096, address: region.address + offset)
                }
                #expect("the kernel notices an address one page off: EINVAL") {
                    try iommufd.selftestCheckMap(device, iova: region.iova, length: 4096, address: region.address + 4096)
                } throws: { ($0 as? IOMMUError)?.errno == .invalidArgument }
            }
            #expect(HugePagePool.read(.huge1GiB, system: LinuxSystem())?.available == pool1G?.available, "the page goes back with the region")
            try iommufd.destroy(device.selftestID)
        }
    }
}
