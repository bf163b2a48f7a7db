import Edu
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// The Edu driver unchanged against MockKernel's edu model (`installEduModel`), through
/// both VFIO paths: what the VM lane's EduDMATests shows QEMU's edu doing (identification,
/// liveness, factorial, DMA both ways through the IOMMU, interrupt status).
@Suite("the Edu driver on MockKernel's edu")
struct EduDriverTests {
    static let paths: [VFIODevice.Path] = [.iommufdCdev, .legacyGroup]

    static func machine() -> MockKernel {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        let kernel = MockKernel(configuration: configuration)
        kernel.installEduModel("0000:00:02.0")
        return kernel
    }

    @Test("registers and a 4095-byte DMA round trip, every byte checked; an IOVA the IOMMU does not map moves nothing", arguments: paths)
    func roundTrip(path: VFIODevice.Path) throws {
        let kernel = Self.machine()
        do {
            let owned = try VFIOPCIDevice(try PCIAddress(parsing: "0000:00:02.0"), path: .only(path), system: kernel)
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            #expect(edu.identification == 0x0100_00ed)
            #expect(edu.livenessCheck(0x1234_5678) == ~UInt32(0x1234_5678))
            #expect(try edu.factorial(of: 5) == 120)
            #expect(try edu.factorial(of: 13) == 1_932_053_504, "13! modulo 2^32")

            let memory = try kernel.mmap(address: nil, length: 8192, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let source = UnsafeMutableRawBufferPointer(start: memory, count: 4096)
            let destination = UnsafeMutableRawBufferPointer(start: memory + 4096, count: 4096)
            for index in 0..<4096 { source[index] = UInt8(truncatingIfNeeded: index &* 7 &+ 3) }
            let sourceMapping = try owned.addressSpace.map(UnsafeRawBufferPointer(source), at: IOVA(0x10_0000), access: .readable)
            let destinationMapping = try owned.addressSpace.map(UnsafeRawBufferPointer(destination), at: IOVA(0x20_0000))
            let count = Int(EduDevice.maximumTransfer)
            try edu.copyToDevice(from: sourceMapping.iova, count: UInt64(count))
            try edu.copyToHost(to: destinationMapping.iova, count: UInt64(count))
            #expect((0..<count).allSatisfy { destination[$0] == source[$0] })
            #expect(destination[count] == 0, "bytes past the transfer stay")

            destination.initializeMemory(as: UInt8.self, repeating: 0)
            try edu.copyToHost(to: IOVA(0x90_0000), count: 64)  // not mapped: the IOMMU refuses
            #expect(destination.allSatisfy { $0 == 0 })

            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(destinationMapping)
            try owned.addressSpace.unmap(sourceMapping)
            try kernel.munmap(memory, length: 8192)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    @Test("interrupt status: raise sets bits, acknowledge clears them; a DMA asked to interrupt sets 0x100")
    func interruptStatus() throws {
        let kernel = Self.machine()
        do {
            let owned = try VFIOPCIDevice(try PCIAddress(parsing: "0000:00:02.0"), path: .only(.iommufdCdev), system: kernel)
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            edu.raiseInterrupt(0x5)
            #expect(edu.interruptStatus == 0x5)
            edu.acknowledgeInterrupt(0x1)
            #expect(edu.interruptStatus == 0x4)
            edu.acknowledgeInterrupt(0x4)
            let memory = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(start: memory, count: 4096), at: IOVA(0x10_0000))
            try edu.copyToDevice(from: mapping.iova, count: 16, interruptWhenDone: true)
            #expect(edu.interruptStatus == 0x100)
            edu.acknowledgeInterrupt(0x100)
            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
            try kernel.munmap(memory, length: 4096)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    @Test("a DMA that never finishes and a factorial that never finishes time out; the next command works", arguments: paths)
    func stalls(path: VFIODevice.Path) throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        let kernel = MockKernel(configuration: configuration)
        let faults = kernel.installEduModel("0000:00:02.0")
        do {
            let owned = try VFIOPCIDevice(try PCIAddress(parsing: "0000:00:02.0"), path: .only(path), system: kernel)
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device, timeout: 0.05)
            let memory = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let page = UnsafeMutableRawBufferPointer(start: memory, count: 4096)
            for index in 0..<4096 { page[index] = UInt8(truncatingIfNeeded: index) }
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(page), at: IOVA(0x10_0000))

            faults.stallNextDMA()
            #expect(throws: EduDevice.Failure.timedOut) { try edu.copyToDevice(from: mapping.iova, count: 256) }
            try edu.copyToDevice(from: mapping.iova, count: 256)
            page.initializeMemory(as: UInt8.self, repeating: 0)
            try edu.copyToHost(to: mapping.iova, count: 256)
            #expect((0..<256).allSatisfy { page[$0] == UInt8($0) }, "the DMA after the stall moved the bytes")

            faults.stallNextFactorial()
            #expect(throws: EduDevice.Failure.timedOut) { try edu.factorial(of: 6) }
            #expect(try edu.factorial(of: 6) == 720)

            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
            try kernel.munmap(memory, length: 4096)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }
}
