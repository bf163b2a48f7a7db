import IOMMUFD
import MockKernel
import Synchronization
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// What a mock device's register handlers saw, shared with the test body.
final class RegisterLog: Sendable {
    let accesses = Mutex<[MockKernel.RegisterAccess]>([])
    /// The submission entry each doorbell found in DMA memory (nil: the IOMMU blocked the read).
    let entriesSeen = Mutex<[[UInt8]?]>([])

    func append(_ access: MockKernel.RegisterAccess) { accesses.withLock { $0.append(access) } }
    var all: [MockKernel.RegisterAccess] { accesses.withLock { $0 } }
}

/// Anonymous memory from the mock mapped for `owned`'s DMA at `iova`, with bus mastering on;
/// `body` gets the memory, then everything is undone.
func withDMAMemory(
    _ kernel: MockKernel, _ owned: VFIOPCIDevice, pages: Int = 2, at iova: UInt64 = 0x10_0000,
    _ body: (UnsafeMutableRawBufferPointer) throws -> Void
) throws {
    let length = pages * 4096
    let memory = try kernel.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE,
                                 flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
    let buffer = UnsafeMutableRawBufferPointer(start: memory, count: length)
    let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(iova))
    try owned.device.setBusMaster(true)
    try body(buffer)
    try owned.device.setBusMaster(false)
    try owned.addressSpace.unmap(mapping)
    try kernel.munmap(memory, length: length)
}

/// BAR accesses on MockKernel: byte order, the doorbell and completion accessors, and
/// the hook through which a mock device sees register writes and answers reads.
@Suite("MMIO regions: little-endian accessors, ordered doorbells and completions, the mock's register hook")
struct MMIORegionTests {
    @Test("every width stores little-endian bytes in the BAR and reads them back", arguments: VFIODeviceTests.paths)
    func littleEndianRoundTrip(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            let device = try #require(kernel.barMemory("0000:00:02.0", bar: 0))
            registers.write8(0xaa, at: 0x50)
            registers.write16(0xbeef, at: 0x30)
            registers.write32(0x1234_5678, at: 0x20)
            registers.write64(0x0102_0304_0506_0708, at: 0x40)
            #expect(device[0x50] == 0xaa)
            #expect(Array(device[0x30..<0x32]) == [0xef, 0xbe])
            #expect(Array(device[0x20..<0x24]) == [0x78, 0x56, 0x34, 0x12])
            #expect(Array(device[0x40..<0x48]) == [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
            #expect(registers.read8(at: 0x50) == 0xaa && registers.read16(at: 0x30) == 0xbeef)
            #expect(registers.read32(at: 0x20) == 0x1234_5678 && registers.read64(at: 0x40) == 0x0102_0304_0506_0708)
            // What the device puts in its registers, the driver reads as little-endian.
            for (index, byte) in [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88].enumerated() { device[0x60 + index] = UInt8(byte) }
            #expect(registers.read16(at: 0x60) == 0x2211 && registers.read32(at: 0x60) == 0x4433_2211)
            #expect(registers.read64(at: 0x60) == 0x8877_6655_4433_2211 && registers.readCompletion32(at: 0x64) == 0x8877_6655)
            _ = consume registers
        }
    }

    @Test("a partial mapping (nvme's doorbell page alone) reaches the BAR's registers at their own offsets; an unaligned or out-of-BAR range is EINVAL")
    func doorbellPageAlone() throws {
        try withPCIMachine { kernel in
            let log = RegisterLog()
            kernel.onRegisterWrite("0000:00:04.0", bar: 0, at: 0x1000) { _, access in log.append(access) }
            let owned = try VFIOPCIDevice(nvme, path: .only(.iommufdCdev), system: kernel)
            let bar0 = try owned.device.region(0)
            let doorbells = try owned.device.map(bar0, offset: 0x1000, length: 0x1000)
            #expect(doorbells.length == 0x1000)
            doorbells.writeDoorbell32(7, at: 0)
            #expect(log.all.map(\.offset) == [0x1000] && log.all.map(\.value) == [7])
            #expect(kernel.barMemory("0000:00:04.0", bar: 0).map { Array($0[0x1000..<0x1004]) } == [7, 0, 0, 0])
            for (offset, length) in [(UInt64(0x800), UInt64(0x1000)), (0x1000, 0), (0x3000, 0x2000)] {
                #expect(errnoOf { _ = try owned.device.map(bar0, offset: offset, length: length) } == .invalidArgument, "\(offset)+\(length)")
            }
            _ = consume doorbells
        }
    }

    @Test("a 64-bit register written as two 32-bit halves: low first, or high first, each one access")
    func splitSixtyFourBitWrite() throws {
        try withPCIMachine { kernel in
            let log = RegisterLog()
            kernel.onRegisterWrite("0000:00:04.0", bar: 0, offsets: 0x28..<0x30) { _, access in log.append(access) }
            let owned = try VFIOPCIDevice(nvme, path: .only(.iommufdCdev), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            registers.write64(0x1122_3344_5566_7788, at: 0x28, halves: .lowFirst)   // NVMe's ASQ
            registers.write64(0x99aa_bbcc_ddee_ff00, at: 0x28, halves: .highFirst)
            #expect(log.all.map(\.offset) == [0x28, 0x2c, 0x2c, 0x28])
            #expect(log.all.map(\.width) == [4, 4, 4, 4])
            #expect(log.all.map(\.value) == [0x5566_7788, 0x1122_3344, 0x99aa_bbcc, 0xddee_ff00])
            #expect(registers.read64(at: 0x28) == 0x99aa_bbcc_ddee_ff00)
            _ = consume registers
        }
    }

    @Test("a doorbell reaches the device's handler once, with its offset, width and value, after the entry it announces")
    func doorbellAfterSubmissionEntry() throws {
        try withPCIMachine { kernel in
            let log = RegisterLog()
            // The device: on a write to SQ0's tail doorbell it fetches the entry before the tail.
            kernel.onRegisterWrite("0000:00:04.0", bar: 0, at: 0x1000) { kernel, access in
                log.append(access)
                let entry = kernel.pciDeviceRead(access.device, iova: 0x10_0000 + (access.value - 1) * 64, length: 64)
                log.entriesSeen.withLock { $0.append(entry) }
            }
            let owned = try VFIOPCIDevice(nvme, path: .only(.iommufdCdev), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            try withDMAMemory(kernel, owned) { queue in
                let entry = (0..<64).map { UInt8(truncatingIfNeeded: 0x40 + $0) }
                queue.copyBytes(from: entry)
                registers.writeDoorbell32(1, at: 0x1000)
                registers.write32(0, at: 0x1004)  // CQ0's head doorbell: no handler
                #expect(log.all == [.init(device: "0000:00:04.0", bar: 0, offset: 0x1000, width: 4, value: 1)])
                #expect(log.entriesSeen.withLock { $0 } == [entry], "the device saw the entry stored before the doorbell")
                #expect(kernel.barMemory("0000:00:04.0", bar: 0)?.load(fromByteOffset: 0x1000, as: UInt32.self) == 1,
                        "the store landed before the handler ran")
            }
            kernel.removeRegisterHandlers("0000:00:04.0")
            registers.writeDoorbell32(2, at: 0x1000)
            #expect(log.all.count == 1, "a removed handler is not called")
            _ = consume registers
        }
    }

    @Test("handlers see the accesses that overlap their registers, with each access's own width")
    func handlersSeeOverlappingAccesses() throws {
        try withPCIMachine { kernel in
            let log = RegisterLog()
            kernel.onRegisterWrite("0000:00:04.0", bar: 0, offsets: 0x1000..<0x1008) { _, access in log.append(access) }
            let owned = try VFIOPCIDevice(nvme, path: .only(.legacyGroup), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            registers.write16(0x7, at: 0x1006)
            registers.write64(0x1_0000_0002, at: 0x1000)
            registers.write8(0xff, at: 0x0fff)
            registers.write32(0x3, at: 0x1008)
            #expect(log.all.map(\.description) == ["0000:00:04.0 BAR0+0x1006/2 = 0x7", "0000:00:04.0 BAR0+0x1000/8 = 0x100000002"])
            _ = consume registers
        }
    }

    @Test("a copy engine: the command doorbell starts it, the completion read sees it done, then the data")
    func copyEngineCompletion() throws {
        try withPCIMachine { kernel in
            // edu's registers: source 0x80, destination 0x88, count 0x90, command 0x98 (bit 0 = busy).
            kernel.onRegisterWrite("0000:00:02.0", bar: 0, at: 0x98) { kernel, access in
                guard access.value & 1 != 0, let bar = kernel.barMemory(access.device, bar: 0) else { return }
                let source = bar.load(fromByteOffset: 0x80, as: UInt64.self), destination = bar.load(fromByteOffset: 0x88, as: UInt64.self)
                let count = Int(bar.load(fromByteOffset: 0x90, as: UInt64.self))
                if let bytes = kernel.pciDeviceRead(access.device, iova: source, length: count) {
                    _ = kernel.pciDeviceWrite(access.device, iova: destination, bytes: bytes.map { ~$0 })
                }
                bar.storeBytes(of: access.value & ~1, toByteOffset: 0x98, as: UInt64.self)
            }
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            try withDMAMemory(kernel, owned) { memory in
                for index in 0..<256 { memory[index] = UInt8(index) }
                registers.write64(0x10_0000, at: 0x80)
                registers.write64(0x10_1000, at: 0x88)
                registers.write64(256, at: 0x90)
                registers.writeDoorbell64(1, at: 0x98)
                #expect(registers.readCompletion64(at: 0x98) & 1 == 0, "the engine is done")
                #expect(Array(memory[0x1000..<0x1100]) == (0..<256).map { ~UInt8($0) })
            }
            _ = consume registers
        }
    }

    @Test("a read handler sees what the load found and answers in its place (edu's liveness register)")
    func readHandlerAnswers() throws {
        try withPCIMachine { kernel in
            let log = RegisterLog()
            kernel.onRegisterRead("0000:00:02.0", bar: 0, offsets: 0x04..<0x08) { _, access in
                log.append(access)
                return ~access.value
            }
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            registers.write32(0x1234_5678, at: 0x04)
            #expect(registers.read32(at: 0x04) == 0xedcb_a987, "the answer is truncated to the access's width")
            #expect(registers.read16(at: 0x06) == 0xedcb)
            #expect(registers.read32(at: 0x08) == 0, "no handler: the BAR's memory")
            #expect(log.all.map(\.description) == ["0000:00:02.0 BAR0+0x4/4 = 0x12345678", "0000:00:02.0 BAR0+0x6/2 = 0x1234"])
            _ = consume registers
        }
    }

    @Test("the real system hands out no observer; a mock device's mapping has one, other descriptors none")
    func observerOnlyOnTheModel() throws {
        #expect(LinuxSystem().mmioObserver(fd: 0, offset: 0) == nil)
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            let registers = try owned.device.map(owned.device.region(0))
            let observed = registers.isObserved
            #expect(observed)
            guard case .iommufd(let ioas) = owned.addressSpace else { Issue.record("cdev path without an IOAS"); return }
            #expect(kernel.mmioObserver(fd: ioas.iommufd.fileDescriptor.rawValue, offset: 0) == nil)
            _ = consume registers
        }
    }

    @Test("the five barriers execute on this CPU")
    func barriersExecute() {
        MemoryBarrier.full()
        MemoryBarrier.write()
        MemoryBarrier.read()
        MemoryBarrier.dmaWrite()
        MemoryBarrier.dmaRead()
    }

    @Test("a read at the end of a BAR stops the program")
    func readPastEndTraps() async {
        await #expect(processExitsWith: .failure) { accessOutsideBAR(.readPastEnd) }
    }

    @Test("a doorbell straddling the end of a BAR stops the program")
    func doorbellAcrossEndTraps() async {
        await #expect(processExitsWith: .failure) { accessOutsideBAR(.doorbellAcrossEnd) }
    }

    @Test("a misaligned 64-bit write stops the program")
    func misalignedWriteTraps() async {
        await #expect(processExitsWith: .failure) { accessOutsideBAR(.misaligned) }
    }
}

/// An access the accessors must refuse.
enum OutsideAccess {
    case readPastEnd, doorbellAcrossEnd, misaligned
}

/// Maps edu's BAR0 on a fresh mock machine and makes one access that must stop the program.
func accessOutsideBAR(_ access: OutsideAccess) {
    do {
        let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: pciMachine())
        let registers = try owned.device.map(owned.device.region(0))
        let end = UInt64(registers.length)
        switch access {
        case .readPastEnd: _ = registers.read32(at: end)
        case .doorbellAcrossEnd: registers.writeDoorbell32(0, at: end - 2)
        case .misaligned: registers.write64(0, at: 4)
        }
    } catch {
        // Setting up failed: exit normally, so the exit test reports it.
    }
}
