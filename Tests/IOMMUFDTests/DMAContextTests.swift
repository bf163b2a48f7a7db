import CIOMMUFD
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// Several devices in one IOMMU context (libvfn's `iommu_ctx`): one mapping reaches them all.
@Suite("DMA contexts shared by devices, through the cdev and the legacy path")
struct DMAContextTests {
    static let paths: [VFIODevice.Path] = [.iommufdCdev, .legacyGroup]

    @Test("two devices claimed into one context share its address space: one mapping, both devices reach it", arguments: paths)
    func twoDevicesShareOneMapping(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let context = try DMAContext(path: .only(path), system: kernel)
            let teaching = try context.claim(edu)
            let nic = try context.claim(e1000e)
            #expect(teaching.path == path && nic.path == path)
            switch (teaching.addressSpace, nic.addressSpace) {
            case (.iommufd(let first), .iommufd(let second)): #expect(first === second)
            case (.type1(let first), .type1(let second)): #expect(first === second)
            default: Issue.record("the devices do not share the context's address space")
            }
            let memory = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let buffer = UnsafeMutableRawBufferPointer(start: memory, count: 4096)
            for index in 0..<4096 { buffer[index] = UInt8(truncatingIfNeeded: index &* 7) }
            let mapping = try context.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x40_0000))
            try teaching.device.setBusMaster(true)
            try nic.device.setBusMaster(true)
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x40_0000, length: 4096) == Array(buffer))
            #expect(kernel.pciDeviceWrite("0000:00:03.0", iova: 0x40_0000, bytes: [0xAA, 0xBB]), "the second device writes the same buffer")
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x40_0000, length: 2) == [0xAA, 0xBB], "and the first sees it")
            try teaching.device.setBusMaster(false)
            try nic.device.setBusMaster(false)
            try context.addressSpace.unmap(mapping)
            try kernel.munmap(memory, length: 4096)
        }
    }

    @Test("the default stays one context per device: two devices opened alone do not share", arguments: paths)
    func separateByDefault(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let teaching = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            let storage = try VFIOPCIDevice(nvme, path: .only(path), system: kernel)
            #expect(teaching.context !== storage.context)
            let memory = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let mapping = try teaching.addressSpace.map(UnsafeRawBufferPointer(start: memory, count: 4096), at: IOVA(0x40_0000))
            try teaching.device.setBusMaster(true)
            try storage.device.setBusMaster(true)
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x40_0000, length: 16) != nil)
            #expect(kernel.pciDeviceRead("0000:00:04.0", iova: 0x40_0000, length: 16) == nil, "another context's mapping is not reachable")
            try teaching.device.setBusMaster(false)
            try storage.device.setBusMaster(false)
            try teaching.addressSpace.unmap(mapping)
            try kernel.munmap(memory, length: 4096)
        }
    }

    @Test("two functions of one IOMMU group share the group in a legacy context (it opens once)")
    func oneGroupOpensOnce() throws {
        try withPCIMachine({ configuration in
            configuration.addPCIDevice(.init(address: "0000:01:00.0", vendorID: 0x8086, deviceID: 0x1533, iommuGroup: 9))
            configuration.addPCIDevice(.init(address: "0000:01:00.1", vendorID: 0x8086, deviceID: 0x1533, iommuGroup: 9))
        }) { kernel in
            let context = try DMAContext(path: .only(.legacyGroup), system: kernel)
            let first = try context.claim(try PCIAddress(parsing: "0000:01:00.0"))
            let second = try context.claim(try PCIAddress(parsing: "0000:01:00.1"))
            #expect(first.path == .legacyGroup && second.path == .legacyGroup)
            #expect(kernel.trace.filter { $0.name == "VFIO_GROUP_SET_CONTAINER" }.count == 1)
        }
    }
}
