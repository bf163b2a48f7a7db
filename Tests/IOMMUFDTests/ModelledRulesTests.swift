import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// Kernel rules MockKernel models that the REFERENCE groups do not name, each with its errno.
@Suite("Modelled kernel rules")
struct ModelledRulesTests {
    @Test("ALLOW_IOVAS: a range whose start is not below its last gives EINVAL")
    func allowEmptyRangeFails() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.ioas.allowIOVAs([IOVARange(start: IOVA(0x1000), last: IOVA(0x1000))]) } == .invalidArgument)
        }
    }

    @Test("ALLOW_IOVAS: overlapping ranges in one call give EINVAL")
    func allowOverlappingRangesFails() throws {
        try withMockWorld { world in
            let ranges = [IOVARange(start: IOVA(0x1000), length: 0x2000), IOVARange(start: IOVA(0x2000), length: 0x2000)]
            #expect(errnoOf { try world.ioas.allowIOVAs(ranges) } == .invalidArgument)
            // An empty list lifts the restriction again.
            try world.ioas.allowIOVAs([IOVARange(start: IOVA(0x1000), length: 0x2000)])
            try world.ioas.allowIOVAs([])
        }
    }

    @Test("ADD_RESERVED of length 0 gives EINVAL, of a wrapping range EOVERFLOW")
    func addReservedBadLength() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.ioas.selftestAddReserved(start: IOVA(0x1000), length: 0) } == .invalidArgument)
            #expect(errnoOf { try world.ioas.selftestAddReserved(start: IOVA(.max), length: 2) } == .overflow)
        }
    }

    @Test("HWPT_ALLOC and GET_HW_INFO for an unknown device give ENOENT")
    func unknownDeviceIsNoEntry() throws {
        try withMockWorld { world in
            var alloc = iommu_hwpt_alloc()
            alloc.size = UInt32(MemoryLayout<iommu_hwpt_alloc>.size)
            alloc.dev_id = 99
            alloc.pt_id = world.ioas.id.rawValue
            #expect(world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc) == .noSuchFileOrDirectory)
            var info = iommu_hw_info()
            info.size = UInt32(MemoryLayout<iommu_hw_info>.size)
            info.dev_id = 99
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &info) == .noSuchFileOrDirectory)
        }
    }

    @Test("IOAS_NOIOMMU_GET_PA without CAP_SYS_RAWIO gives EPERM")
    func noIOMMUGetPANeedsRawIO() throws {
        try withMockWorld { world in
            var command = iommu_ioas_noiommu_get_pa()
            command.size = UInt32(MemoryLayout<iommu_ioas_noiommu_get_pa>.size)
            command.ioas_id = world.ioas.id.rawValue
            command.length = page
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &command) == .notPermitted)
        }
    }

    @Test("IOAS_COPY with no access flag gives EINVAL, with an unknown flag EOPNOTSUPP")
    func copyFlagChecks() throws {
        try withMockWorld { world in
            var command = iommu_ioas_copy()
            command.size = 40
            command.dst_ioas_id = world.ioas.id.rawValue
            command.src_ioas_id = world.ioas.id.rawValue
            command.length = page
            #expect(world.rawIoctl(IOMMU_IOAS_COPY, &command) == .invalidArgument)
            command.flags = IOMMU_IOAS_MAP_READABLE | (1 << 5)
            #expect(world.rawIoctl(IOMMU_IOAS_COPY, &command) == .notSupported)
            command.flags = IOMMU_IOAS_MAP_READABLE
            command.src_iova = .max
            #expect(world.rawIoctl(IOMMU_IOAS_COPY, &command) == .overflow)
        }
    }
}
