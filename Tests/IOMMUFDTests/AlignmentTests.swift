@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group E: alignment and sizes.
@Suite("E. alignment and sizes")
struct AlignmentTests {
    @Test("E1: without a domain every length from 1 to 2 pages maps (alignment 1)")
    func anyLengthWithoutDomain() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 2)
            for length in stride(from: UInt64(1), through: 2 * page, by: 1) {
                let mapping = try world.ioas.map(userAddress: world.address(buffer), length: length, at: IOVA(0x100000))
                try world.ioas.unmap(mapping)
            }
            try world.release(buffer, pages: 2)
        }
    }

    @Test("E1: with a domain, lengths not a multiple of its 2 KiB I/O page give EINVAL")
    func lengthAlignmentWithDomain() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 2)
            for length in stride(from: UInt64(1), through: 2 * page, by: 1) {
                let result = errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: length, at: IOVA(1 << 24)) }
                if length % 2048 == 0 {
                    #expect(result == nil)
                    _ = try world.ioas.unmap(iova: IOVA(1 << 24), length: length)
                } else {
                    #expect(result == .invalidArgument, "length \(length)")
                }
            }
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 2)
        }
    }

    @Test("E2: length 0 gives EINVAL")
    func zeroLength() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 0) } == .invalidArgument)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 0, at: IOVA(0x1000)) } == .invalidArgument)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("E3: a fixed IOVA not aligned to the domain's I/O page gives EINVAL")
    func misalignedFixedIOVA() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 1)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 2048, at: IOVA((1 << 24) + 512)) } == .invalidArgument)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("E3: a source address whose page offset breaks the domain alignment gives EINVAL")
    func misalignedSource() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 2)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer) + 512, length: 2048, at: IOVA(1 << 24)) } == .invalidArgument)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 2)
        }
    }

    @Test("E4: every page-granular (start, end) over 8 pages pins exactly its pages and unpins them all")
    func subRangesPinExactly() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 8)
            for start in 0..<UInt64(8) {
                for end in (start + 1)...UInt64(8) {
                    let mapping = try world.ioas.map(userAddress: world.address(buffer) + start * page, length: (end - start) * page)
                    #expect(world.kernel.pinnedPageCount == end - start)
                    try world.ioas.unmap(mapping)
                    #expect(world.kernel.pinnedPageCount == 0)
                }
            }
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 8)
        }
    }

    @Test("E4: sub-page (start, end) pairs in 2 KiB steps over 2 huge-page-sized spans pin whole pages")
    func subPageRangesPinWholePages() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 4)
            for start in stride(from: UInt64(0), to: 4 * page, by: 2048) {
                for end in stride(from: start + 2048, through: 4 * page, by: 2048) {
                    let mapping = try world.ioas.map(userAddress: world.address(buffer) + start, length: end - start, at: IOVA((1 << 24) + start))
                    let pages = (end + page - 1) / page - start / page
                    #expect(world.kernel.pinnedPageCount == pages)
                    try world.ioas.unmap(mapping)
                }
            }
            #expect(world.kernel.pinnedPageCount == 0)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 4)
        }
    }

    @Test("E5: the HUGE_PAGES option takes only 0 or 1 (2 gives EINVAL)")
    func hugePagesValues() throws {
        try withMockWorld { world in
            let observed20 = try world.ioas.hugePagesEnabled()
            #expect(observed20)
            #expect(errnoOf { try world.iommufd.setOption(1, objectID: world.ioas.id.rawValue, value: 2) } == .invalidArgument)
            try world.ioas.setHugePages(false)
            let observed21 = try world.ioas.hugePagesEnabled()
            #expect(!observed21)
            let observed22 = try world.ioas.iovaRanges().alignment
            #expect(observed22 == page)
            try world.ioas.setHugePages(true)
            let observed23 = try world.ioas.iovaRanges().alignment
            #expect(observed23 == 1)
        }
    }

    @Test("E5: forbidding huge pages while a misaligned mapping exists gives EADDRINUSE")
    func hugePagesOffWithMisalignedMap() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 0x100, at: IOVA(0x10000))
            #expect(errnoOf { try world.ioas.setHugePages(false) } == .addressInUse)
            let observed24 = try world.ioas.hugePagesEnabled()
            #expect(observed24)
            try world.ioas.unmap(mapping)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("E5: forbidding huge pages while a domain holds mappings gives EINVAL")
    func hugePagesOffWithDomainMappings() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 1)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: page)
            #expect(errnoOf { try world.ioas.setHugePages(false) } == .invalidArgument)
            try world.ioas.unmap(mapping)
            try world.ioas.setHugePages(false)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("a domain's page size stricter than existing mappings allow gives EADDRINUSE at attach")
    func attachOverMisalignedMapping() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 0x100, at: IOVA(1 << 24))
            #expect(errnoOf { try world.ioas.selftestAttachMockDomain() } == .addressInUse)
            try world.ioas.unmap(mapping)
            try world.release(buffer, pages: 1)
        }
    }
}
