@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group D: unmap semantics (iommufd never splits an area).
@Suite("D. unmap semantics")
struct UnmapTests {
    @Test("D1: unmapping where nothing is mapped gives ENOENT")
    func unmapNothingFails() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(0x100000), length: page) } == .noSuchFileOrDirectory)
        }
    }

    @Test("D2: unmapping part of one mapping gives ENOENT and keeps it")
    func splitFails() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 4)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 4 * page, at: IOVA(0x100000))
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(0x100000 + page), length: page) } == .noSuchFileOrDirectory)
            try world.ioas.unmap(mapping)
            try world.release(buffer, pages: 4)
        }
    }

    @Test("D3: a range that cuts the first mapping's start gives ENOENT and unmaps nothing")
    func cutAtStartFails() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 4)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: 2 * page, at: IOVA(0x100000))
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(0x100000 + page), length: 8 * page) } == .noSuchFileOrDirectory)
            let observed5 = try world.ioas.unmapAll()
            #expect(observed5 == 2 * page)
            try world.release(buffer, pages: 4)
        }
    }

    @Test("D3: a range that cuts the last mapping's end gives ENOENT after removing the whole ones before it")
    func cutAtEndFails() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 4)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x100000))
            _ = try world.ioas.map(userAddress: world.address(buffer), length: 2 * page, at: IOVA(0x200000))
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(0x100000), length: 0x100000 + page) } == .noSuchFileOrDirectory)
            // The kernel walks areas in order: the first one is gone, the cut one stays.
            let observed6 = try world.ioas.unmapAll()
            #expect(observed6 == 2 * page)
            try world.release(buffer, pages: 4)
        }
    }

    @Test("D4: a range with holes that contains whole mappings unmaps them and returns their bytes")
    func rangeWithHoles() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 4)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x100000))
            _ = try world.ioas.map(userAddress: world.address(buffer), length: 3 * page, at: IOVA(0x300000))
            let observed7 = try world.ioas.unmap(iova: IOVA(0), length: 0x1000000)
            #expect(observed7 == 4 * page)
            try world.release(buffer, pages: 4)
        }
    }

    @Test("D5: unmap-all succeeds on an empty IOAS and reports 0 bytes")
    func unmapAllEmpty() throws {
        try withMockWorld { world in
            let observed8 = try world.ioas.unmapAll()
            #expect(observed8 == 0)
        }
    }

    @Test("D5: unmap-all removes every mapping and reports the total")
    func unmapAllPopulated() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 8)
            for index in 0..<8 {
                _ = try world.ioas.map(userAddress: world.address(buffer) + UInt64(index) * page, length: page)
            }
            let observed9 = try world.ioas.unmapAll()
            #expect(observed9 == 8 * page)
            let observed10 = try world.ioas.unmapAll()
            #expect(observed10 == 0)
            try world.release(buffer, pages: 8)
        }
    }

    @Test("unmapping exactly one mapping checks the length the kernel reports (EIO on a mismatch)")
    func exactUnmapChecksLength() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x100000))
            let wrong = IOASMapping(iova: mapping.iova, length: 2 * page)
            do throws(IOMMUError) {
                try world.ioas.unmap(wrong)
                Issue.record("a length mismatch must throw")
            } catch {
                #expect(error.errno == .ioError)
                #expect(error.context.reportedLength == page)
                #expect(error.description.contains("different number of bytes"))
            }
            try world.release(buffer, pages: 1)
        }
    }

    @Test("unmap of length 0 gives EINVAL")
    func zeroLengthUnmap() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(0x1000), length: 0) } == .invalidArgument)
        }
    }
}
