import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group B: object ids and types.
@Suite("B. object ids and types")
struct ObjectIDTests {
    @Test("B1: destroying id 0 gives ENOENT")
    func destroyZeroFails() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.iommufd.destroy(rawID: 0) } == .noSuchFileOrDirectory)
        }
    }

    @Test("B1: destroying an unknown id gives ENOENT")
    func destroyUnknownFails() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.iommufd.destroy(rawID: 4242) } == .noSuchFileOrDirectory)
        }
    }

    @Test("B2: destroying the same id twice gives ENOENT the second time")
    func destroyTwiceFails() throws {
        try withMockWorld { world in
            let second = try world.iommufd.allocateIOAS()
            try second.destroy()
            #expect(errnoOf { try world.iommufd.destroy(second.id) } == .noSuchFileOrDirectory)
        }
    }

    @Test("B3: an IOAS command given a device id gives ENOENT (iommufd_get_ioas)")
    func deviceIDAsIOASFails() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            var command = iommu_ioas_unmap(size: 24, ioas_id: device.deviceID.rawValue, iova: 0, length: .max)
            #expect(world.rawIoctl(IOMMU_IOAS_UNMAP, &command) == .noSuchFileOrDirectory)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("B3: attaching to a device id as page table gives EINVAL")
    func deviceIDAsPageTableFails() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            var command = iommu_test_cmd()
            command.size = 72
            command.op = IOMMU_TEST_OP_MOCK_DOMAIN
            command.id = device.deviceID.rawValue
            #expect(world.rawIoctl(IOMMU_TEST_CMD, &command) == .invalidArgument)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("B5: an automatic HWPT freed by a replace is gone (ENOENT)")
    func autoHWPTAfterReplaceIsGone() throws {
        try withMockWorld { world in
            let other = try world.iommufd.allocateIOAS()
            let device = try world.ioas.selftestAttachMockDomain()
            var command = iommu_test_cmd()
            command.size = 72
            command.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE
            command.id = device.selftestID.rawValue
            command.mock_domain_replace.pt_id = other.id.rawValue
            #expect(world.rawIoctl(IOMMU_TEST_CMD, &command) == nil)
            #expect(command.mock_domain_replace.pt_id != device.hwptID.rawValue)
            #expect(errnoOf { try world.iommufd.destroy(device.hwptID) } == .noSuchFileOrDirectory)
            // The old IOAS is free again; the new one is in use.
            let observed1 = try world.ioas.iovaRanges().ranges
            #expect(observed1 == [IOVARange(start: IOVA(0), last: IOVA(.max))])
            #expect(errnoOf { try other.destroy() } == .resourceBusy)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("B7: attaching to pt_id UINT32_MAX fails with ENOENT")
    func attachToMaxIDFails() throws {
        try withMockWorld { world in
            var command = iommu_test_cmd()
            command.size = 72
            command.op = IOMMU_TEST_OP_MOCK_DOMAIN
            command.id = .max
            #expect(world.rawIoctl(IOMMU_TEST_CMD, &command) == .noSuchFileOrDirectory)
        }
    }

    @Test("B8: an id from another iommufd context gives ENOENT")
    func idFromOtherContextFails() throws {
        try withMockWorld { world in
            let other = try IOMMUFD(system: world.kernel)
            var command = iommu_ioas_unmap(size: 24, ioas_id: world.ioas.id.rawValue, iova: 0, length: .max)
            #expect(errnoOf {
                try other.perform(IOMMU_IOAS_UNMAP, &command)
            } == .noSuchFileOrDirectory)
        }
    }

    @Test("B9: ids are typed; the raw-id API still checks at run time")
    func typedIDs() throws {
        try withMockWorld { world in
            let ioas = try world.iommufd.allocateIOAS()
            #expect(ioas.id.description == "IOAS#\(ioas.id.rawValue)")
            #expect(HWPTID(rawValue: 3).description == "HWPT#3")
            try world.iommufd.destroy(rawID: ioas.id.rawValue)
            #expect(errnoOf { try ioas.destroy() } == .noSuchFileOrDirectory)
        }
    }

    @Test("ids are handed out lowest-free from 1, as xa_alloc does")
    func idsAreReused() throws {
        try withMockWorld { world in
            #expect(world.ioas.id.rawValue == 1)
            let second = try world.iommufd.allocateIOAS()
            let third = try world.iommufd.allocateIOAS()
            #expect([second.id.rawValue, third.id.rawValue] == [2, 3])
            try second.destroy()
            let fourth = try world.iommufd.allocateIOAS()
            #expect(fourth.id.rawValue == 2)
        }
    }
}

extension IOMMUFD {
    /// A raw command on this context, for tests that need a struct the typed API would not build.
    func perform<Command>(_ request: UInt, _ command: inout Command) throws(IOMMUError) {
        do {
            _ = try withUnsafeMutablePointer(to: &command) { (pointer) throws(Errno) -> Int32 in
                try system.ioctl(fileDescriptor.rawValue, request, UnsafeMutableRawPointer(pointer))
            }
        } catch {
            throw IOMMUError(.testCommand, error)
        }
    }
}
