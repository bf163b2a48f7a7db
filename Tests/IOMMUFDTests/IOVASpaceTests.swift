import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group C: the IOVA space.
@Suite("C. IOVA space")
struct IOVASpaceTests {
    /// Maps 4 pages at 0x100000 and returns the buffer.
    func withFixedMapping(_ body: (MockWorld, UInt64) throws -> Void) throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 8)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: 4 * page, at: IOVA(0x100000))
            try body(world, world.address(buffer))
            _ = try world.ioas.unmapAll()
            try world.release(buffer, pages: 8)
        }
    }

    @Test("C1: a fixed map exactly over a mapping gives EEXIST")
    func exactOverlap() throws {
        try withFixedMapping { world, va in
            #expect(errnoOf { try world.ioas.map(userAddress: va, length: 4 * page, at: IOVA(0x100000)) } == .fileExists)
        }
    }

    @Test("C1: a fixed map over the mapping's prefix gives EEXIST")
    func prefixOverlap() throws {
        try withFixedMapping { world, va in
            #expect(errnoOf { try world.ioas.map(userAddress: va, length: page, at: IOVA(0x100000)) } == .fileExists)
        }
    }

    @Test("C1: a fixed map over the mapping's suffix gives EEXIST")
    func suffixOverlap() throws {
        try withFixedMapping { world, va in
            #expect(errnoOf { try world.ioas.map(userAddress: va, length: page, at: IOVA(0x100000 + 3 * page)) } == .fileExists)
        }
    }

    @Test("C1: a fixed map that is a superset of the mapping gives EEXIST")
    func supersetOverlap() throws {
        try withFixedMapping { world, va in
            #expect(errnoOf { try world.ioas.map(userAddress: va, length: 8 * page, at: IOVA(0x100000 - 2 * page)) } == .fileExists)
        }
    }

    @Test("C1: a fixed map straddling the mapping's end gives EEXIST")
    func straddlingOverlap() throws {
        try withFixedMapping { world, va in
            #expect(errnoOf { try world.ioas.map(userAddress: va, length: 4 * page, at: IOVA(0x100000 + 2 * page)) } == .fileExists)
            // Right after it is free.
            let next = try world.ioas.map(userAddress: va, length: page, at: IOVA(0x100000 + 4 * page))
            try world.ioas.unmap(next)
        }
    }

    @Test("C2: kernel-chosen IOVAs are non-zero and aligned like the kernel aligns them")
    func autoIOVAAlignment() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 16)
            let va = world.address(buffer)
            let mapping = try world.ioas.map(userAddress: va, length: 4 * page)
            let expectedAlignment = min(UInt64(16384), UInt64(1) << UInt64(va.trailingZeroBitCount))
            #expect(mapping.iova.rawValue != 0)
            #expect(mapping.iova.rawValue % expectedAlignment == 0)
            // A sub-page source keeps its page offset in the IOVA.
            let offsetMapping = try world.ioas.map(userAddress: va + 0x10, length: 0x100)
            #expect(offsetMapping.iova.rawValue % page == 0x10)
            _ = try world.ioas.unmapAll()
            try world.release(buffer, pages: 16)
        }
    }

    @Test("C2: kernel-chosen IOVAs avoid reserved ranges")
    func autoIOVAAvoidsReserved() throws {
        try withMockWorld { world in
            try world.ioas.selftestAddReserved(start: IOVA(0), length: 0x100000)
            let buffer = try world.memory(pages: 1)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: page)
            #expect(mapping.iova.rawValue >= 0x100000)
            _ = try world.ioas.unmapAll()
            try world.release(buffer, pages: 1)
        }
    }

    @Test("C2: kernel-chosen IOVAs stay inside the allowed ranges")
    func autoIOVAStaysAllowed() throws {
        try withMockWorld { world in
            let allowed = IOVARange(start: IOVA(0x4000_0000), length: 0x10_0000)
            try world.ioas.allowIOVAs([allowed])
            let buffer = try world.memory(pages: 64)
            for index in 0..<8 {
                let mapping = try world.ioas.map(userAddress: world.address(buffer) + UInt64(index) * 8 * page, length: 8 * page)
                #expect(allowed.contains(mapping.iova) && allowed.contains(mapping.range.last))
            }
            // 8 x 32 KiB fill 256 KiB of the 1 MiB window; a 1 MiB request no longer fits.
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 0x10_0000) } == .noSpace)
            _ = try world.ioas.unmapAll()
            try world.release(buffer, pages: 64)
        }
    }

    @Test("C3: allowing a range that intersects a reserved range gives EADDRINUSE")
    func allowOverReservedFails() throws {
        try withMockWorld { world in
            try world.ioas.selftestAddReserved(start: IOVA(0x10000), length: 0x10000)
            #expect(errnoOf { try world.ioas.allowIOVAs([IOVARange(start: IOVA(0x18000), length: 0x10000)]) } == .addressInUse)
        }
    }

    @Test("C3: reserving a range that intersects an allowed range gives EADDRINUSE")
    func reserveOverAllowedFails() throws {
        try withMockWorld { world in
            try world.ioas.allowIOVAs([IOVARange(start: IOVA(0x18000), length: 0x10000)])
            #expect(errnoOf { try world.ioas.selftestAddReserved(start: IOVA(0x10000), length: 0x10000) } == .addressInUse)
        }
    }

    @Test("C4: with everything reserved up to U64_MAX, a map gives ENOSPC (and a fixed one EINVAL)")
    func fullyReservedGivesNoSpace() throws {
        try withMockWorld { world in
            try world.ioas.selftestAddReserved(start: IOVA(0), length: .max)
            let buffer = try world.memory(pages: 1)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: page) } == .noSpace)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x100000)) } == .invalidArgument)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("C5: a fixed map whose end wraps gives EOVERFLOW")
    func mapWrapOverflows() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 2)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 2 * page, at: IOVA(.max - page + 1)) } == .overflow)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(.max)) } == .overflow)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: .max) } == .overflow)
            #expect(errnoOf { try world.ioas.map(userAddress: .max - 10, length: page) } == .overflow)
            try world.release(buffer, pages: 2)
        }
    }

    @Test("C5: an unmap whose end wraps gives EOVERFLOW")
    func unmapWrapOverflows() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(.max - page + 1), length: 2 * page) } == .overflow)
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(page), length: .max) } == .overflow)
            #expect(errnoOf { try world.ioas.unmap(iova: IOVA(.max), length: page) } == .overflow)
        }
    }

    @Test("C6: the last page of the IOVA space maps, and both unmaps report its exact length")
    func lastPageOfSpace() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            let top = IOVA(.max - page + 1)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: page, at: top)
            let observed12 = try world.ioas.unmap(iova: top, length: page)
            #expect(observed12 == page)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: page, at: top)
            let observed13 = try world.ioas.unmapAll()
            #expect(observed13 == page)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("C7: IOVA_RANGES with num_iovas 0 gives EMSGSIZE, updates the count and writes nothing")
    func iovaRangesTooSmall() throws {
        try withMockWorld { world in
            try world.ioas.selftestAddReserved(start: IOVA(0x10000), length: 0x10000)
            let (result, command, slots) = rawIOVARanges(world, capacity: 0, slots: 2)
            #expect(result == .messageTooLong)
            #expect(command.num_iovas == 2)
            #expect(slots.allSatisfy { $0.start == 0xdead && $0.last == 0xbeef })
        }
    }

    @Test("C7: IOVA_RANGES with a too-small array fills what fits and nothing past it")
    func iovaRangesPartiallyFilled() throws {
        try withMockWorld { world in
            try world.ioas.selftestAddReserved(start: IOVA(0x10000), length: 0x10000)
            let (result, command, slots) = rawIOVARanges(world, capacity: 1, slots: 2)
            #expect(result == .messageTooLong)
            #expect(command.num_iovas == 2)
            #expect(slots[0].start == 0 && slots[0].last == 0xffff)
            #expect(slots[1].start == 0xdead)
            // The typed API retries with room for both.
            let ranges = try world.ioas.iovaRanges()
            #expect(ranges.ranges == [IOVARange(start: IOVA(0), last: IOVA(0xffff)), IOVARange(start: IOVA(0x20000), last: IOVA(.max))])
            #expect(ranges.alignment == 1)
        }
    }

    @Test("C8: after attach the ranges are the domain's aperture; maps outside it give EINVAL")
    func rangesAfterAttach() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let ranges = try world.ioas.iovaRanges()
            #expect(ranges.ranges == [IOVARange(start: IOVA(1 << 24), last: IOVA((1 << 31) - 1))])
            #expect(ranges.alignment == 2048)
            let buffer = try world.memory(pages: 1)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x1000)) } == .invalidArgument)
            let inside = try world.ioas.map(userAddress: world.address(buffer), length: page)
            #expect(ranges.ranges[0].contains(inside.iova))
            try world.ioas.unmap(inside)
            try world.iommufd.destroy(device.selftestID)
            let observed14 = try world.ioas.iovaRanges().ranges
            #expect(observed14 == [IOVARange(start: IOVA(0), last: IOVA(.max))])
            try world.release(buffer, pages: 1)
        }
    }

    @Test("C8: attaching a domain whose aperture excludes an existing mapping gives EADDRINUSE")
    func attachOverMappingOutsideAperture() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            let low = try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x10000))
            #expect(errnoOf { try world.ioas.selftestAttachMockDomain() } == .addressInUse)
            #expect(world.kernel.leaks.liveObjects == 1)
            try world.ioas.unmap(low)
            try world.release(buffer, pages: 1)
        }
    }
}

/// IOMMU_IOAS_IOVA_RANGES issued by hand with room for `capacity` of `slots` poisoned entries.
func rawIOVARanges(_ world: MockWorld, capacity: UInt32, slots count: Int) -> (Errno?, iommu_ioas_iova_ranges, [iommu_iova_range]) {
    var slots = [iommu_iova_range](repeating: iommu_iova_range(start: 0xdead, last: 0xbeef), count: count)
    var command = iommu_ioas_iova_ranges()
    command.size = 32
    command.ioas_id = world.ioas.id.rawValue
    command.num_iovas = capacity
    let result = slots.withUnsafeMutableBufferPointer { pointer in
        command.allowed_iovas = UInt64(UInt(bitPattern: pointer.baseAddress))
        return world.rawIoctl(IOMMU_IOAS_IOVA_RANGES, &command)
    }
    return (result, command, slots)
}
