import DMAMemory
import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// The sub-allocator drivers carve queues and rings from, over one mapped region.
@Suite("DMA arena")
struct DMAArenaTests {
    @Test("slices are aligned as asked (cache line by default), never overlap, and merge back when freed")
    func alignedAndMerged() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            let arena = DMAArena(region: try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd)))
            #expect(arena.bytesFree == 64 << 10)
            let submission = try #require(arena.allocate(64 * 64, alignment: 4096))   // 64 NVMe commands
            let completion = try #require(arena.allocate(16 * 64, alignment: 4096))   // 64 completions
            let prpList = try #require(arena.allocate(8 * 512, alignment: 4096))
            let small = try #require(arena.allocate(24))
            let other = try #require(arena.allocate(40))
            for slice in [submission, completion, prpList] { #expect(slice.iova.rawValue % 4096 == 0) }
            for slice in [small, other] { #expect(slice.iova.rawValue % 64 == 0 && UInt(bitPattern: slice.address) % 64 == 0) }
            let ranges = [submission, completion, prpList, small, other].map { $0.offset..<($0.offset + $0.length) }.sorted { $0.lowerBound < $1.lowerBound }
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound }, "no two slices overlap")
            #expect(arena.region.address(of: small.iova) == small.address, "the CPU and device addresses name the same byte")
            for slice in [completion, small, submission, other, prpList] { arena.free(slice) }
            #expect(arena.bytesFree == 64 << 10, "everything merged back")
            #expect(arena.allocate(64 << 10, alignment: 4096) != nil, "one slice of the whole region fits again")
        }
    }

    @Test("a request no free range holds is nil, and the arena is unchanged")
    func exhausted() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            let arena = DMAArena(region: try manager.makeRegion(length: 8192, backing: .exactly(.memfd)))
            let first = try #require(arena.allocate(4096, alignment: 4096))
            #expect(arena.allocate(8192) == nil)
            #expect(arena.bytesFree == 4096)
            arena.free(first)
            #expect(arena.bytesFree == 8192)
        }
    }

    @Test("a device's write to a slice is seen by DeviceWrittenMemory loads (little-endian, one load each)")
    func deviceWrittenStatus() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, ioas in
            let arena = DMAArena(region: try manager.makeRegion(length: 4096, backing: .exactly(.memfd)))
            let entry = try #require(arena.allocate(16))
            entry.address.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            #expect(DeviceWrittenMemory.load16(entry.address + 14) & 1 == 0, "phase bit not set yet")
            let fd = ioas.iommufd.fileDescriptor.rawValue
            #expect(kernel.deviceWrite(iommufd: fd, ioas: ioas.id.rawValue, iova: entry.iova.rawValue + 8, bytes: [0x78, 0x56, 0x34, 0x12, 0, 0, 0x01, 0]))
            #expect(DeviceWrittenMemory.load16(entry.address + 14) & 1 == 1, "the phase bit the device set")
            #expect(DeviceWrittenMemory.load32(entry.address + 8) == 0x1234_5678)
            #expect(DeviceWrittenMemory.load64(entry.address + 8) == 0x0001_0000_1234_5678)
            arena.free(entry)
        }
    }
}
