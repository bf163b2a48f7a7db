import DMAMemory
import IOMMUFD
import Testing

/// intel-iommu's windows in the VM: everything below 2^39 except the MSI window.
let vtdWindows = IOVARanges(ranges: [IOVARange(start: IOVA(0), last: IOVA(0xfedf_ffff)),
                                     IOVARange(start: IOVA(0xfef0_0000), last: IOVA((1 << 39) - 1))], alignment: 4096)

@Suite("IOVA allocator")
struct IOVAAllocatorTests {
    @Test("never IOVA 0, never inside the MSI window, aligned to the kernel's alignment")
    func windows() throws {
        var allocator = IOVAAllocator(ranges: vtdWindows)
        let first = try allocator.allocate(1)
        #expect(first.start == IOVA(0x1000) && first.length == 4096)
        var touched: [IOVARange] = []
        for _ in 0..<64 { touched.append(try allocator.allocate(0x100_0000)) }
        for range in touched {
            #expect(range.last.rawValue < 0xfee0_0000 || range.start.rawValue > 0xfeef_ffff, "\(range) in the MSI window")
            #expect(range.start.rawValue % (1 << 21) == 0, "16 MiB regions are 2 MiB aligned")
        }
    }

    @Test("a 32-bit DMA mask keeps every IOVA below 4 GiB, and exhaustion says how much waits in quarantine")
    func dmaMask() throws {
        var allocator = IOVAAllocator(ranges: vtdWindows, dmaMask: 0xffff_ffff)
        var ranges: [IOVARange] = []
        while let range = try? allocator.allocate(1 << 28) { ranges.append(range) }
        #expect(ranges.allSatisfy { $0.last.rawValue <= 0xffff_ffff })
        #expect(ranges.count == 15, "2 MiB-aligned 256 MiB regions: 15 fit in [0x200000, 0xfee00000), none in the 17 MiB above the MSI window")
        try allocator.free(ranges[0])
        do {
            _ = try allocator.allocate(1 << 28)
            Issue.record("allocated from quarantined space")
        } catch {
            #expect(error == .exhausted(length: 1 << 28, alignment: 1 << 21, quarantined: 1 << 28))
        }
        allocator.releaseQuarantine()
        #expect(try allocator.allocate(1 << 28) == ranges[0])
    }

    @Test("freed IOVAs are not reused before the quarantine is released; double free is refused")
    func quarantine() throws {
        var allocator = IOVAAllocator(ranges: vtdWindows)
        let a = try allocator.allocate(4096)
        try allocator.free(a)
        #expect(throws: IOVAAllocator.AllocationError.notAllocated(a.start)) { try allocator.free(a) }
        let b = try allocator.allocate(4096)
        #expect(b != a)
        allocator.releaseQuarantine()
        #expect(try allocator.allocate(4096) == a, "the fast path reuses the released range")
    }

    @Test("fragmentation: freed holes are reused, and recycled pieces coalesce when a larger range needs them")
    func fragmentation() throws {
        let small = IOVARanges(ranges: [IOVARange(start: IOVA(0), last: IOVA(0x10_ffff))], alignment: 4096)
        var allocator = IOVAAllocator(ranges: small)
        var pages: [IOVARange] = []
        while let page = try? allocator.allocate(4096) { pages.append(page) }
        #expect(pages.count == 0x10f)
        for page in pages { try allocator.free(page) }
        allocator.releaseQuarantine()
        // No single recycled page is 1 MiB, but together they are.
        let big = try allocator.allocate(0x10_0000)
        #expect(big.length == 0x10_0000)
        #expect(throws: IOVAAllocator.AllocationError.self) { try allocator.allocate(0x10_0000) }
    }

    @Test("a ranges answer with a larger alignment (a 2 KiB-page mock domain needs 0x800, rounded to the page) is honoured")
    func kernelAlignment() throws {
        let coarse = IOVARanges(ranges: [IOVARange(start: IOVA(0x100_0000), last: IOVA(0x7fff_ffff))], alignment: 0x10000)
        var allocator = IOVAAllocator(ranges: coarse)
        let range = try allocator.allocate(100)
        #expect(range.start.rawValue % 0x10000 == 0 && range.length == 0x10000 && range.start.rawValue >= 0x100_0000)
        #expect(throws: IOVAAllocator.AllocationError.zeroLength) { try allocator.allocate(0) }
    }
}
