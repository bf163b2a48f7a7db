@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group H: memlock and accounting.
@Suite("H. memlock and accounting")
struct MemlockTests {
    @Test("H1: a map larger than RLIMIT_MEMLOCK gives ENOMEM naming the limit and the fix")
    func mapOverLimit() throws {
        try withMockWorld(configure: { $0.memlockLimit = 16 * 4096 }) { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 32)
            do throws(IOMMUError) {
                _ = try world.ioas.map(userAddress: world.address(buffer), length: 32 * page)
                Issue.record("mapping 32 pages under a 16-page limit must fail")
            } catch {
                #expect(error.errno == .noMemory)
                #expect(error.operation == .ioasMap)
                #expect(error.context.memlockLimit == 16 * 4096)
                #expect(error.description.contains("RLIMIT_MEMLOCK (currently 65536 bytes"))
                #expect(error.explanation?.fix?.contains("LimitMEMLOCK") == true)
            }
            #expect(world.kernel.leaks.pinnedPages == 0)
            // Exactly the limit fits.
            let fits = try world.ioas.map(userAddress: world.address(buffer), length: 16 * page)
            try world.ioas.unmap(fits)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 32)
        }
    }

    @Test("H1: attaching a domain over mappings larger than the limit gives ENOMEM and leaves nothing")
    func attachOverLimit() throws {
        try withMockWorld(configure: { $0.memlockLimit = 4 * 4096 }) { world in
            let buffer = try world.memory(pages: 8)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 8 * page, at: IOVA(1 << 24))
            #expect(errnoOf { try world.ioas.selftestAttachMockDomain() } == .noMemory)
            #expect(world.kernel.leaks.liveObjects == 1)
            try world.ioas.unmap(mapping)
            try world.release(buffer, pages: 8)
        }
    }

    @Test("H2: with CAP_IPC_LOCK pages are pinned but not charged")
    func ipcLockIsNotCharged() throws {
        try withMockWorld(configure: { $0.memlockLimit = 4096; $0.hasIPCLock = true }) { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 8)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 8 * page)
            #expect(world.kernel.pinnedPageCount == 8)
            #expect(world.kernel.leaks.pinnedPages == 0)
            try world.ioas.unmap(mapping)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 8)
        }
    }

    @Test("H3: setting RLIMIT_MODE without CAP_SYS_RESOURCE gives EPERM")
    func rlimitModeNeedsPrivilege() throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        let observed3 = try iommufd.accountingMode()
        #expect(observed3 == .user)
        #expect(errnoOf { try iommufd.setAccountingMode(.process) } == .notPermitted)
    }

    @Test("H3: setting RLIMIT_MODE with objects present gives EBUSY")
    func rlimitModeWithObjects() throws {
        try withMockWorld(configure: { $0.hasSysResource = true }) { world in
            #expect(errnoOf { try world.iommufd.setAccountingMode(.process) } == .resourceBusy)
        }
    }

    @Test("H3: RLIMIT_MODE value 2 gives EINVAL; 1 selects per-process accounting")
    func rlimitModeValues() throws {
        var configuration = MockKernel.Configuration()
        configuration.hasSysResource = true
        let kernel = MockKernel(configuration: configuration)
        let iommufd = try IOMMUFD(system: kernel)
        #expect(errnoOf { try iommufd.setOption(0, objectID: 0, value: 2) } == .invalidArgument)
        #expect(errnoOf { try iommufd.setOption(0, objectID: 5, value: 1) } == .notSupported)
        try iommufd.setAccountingMode(.process)
        let observed4 = try iommufd.accountingMode()
        #expect(observed4 == .process)
    }

    @Test("H5: IOAS_COPY does not charge the same pages twice")
    func copyDoesNotDoubleCharge() throws {
        try withMockWorld { world in
            let other = try world.iommufd.allocateIOAS()
            let first = try world.ioas.selftestAttachMockDomain()
            let second = try other.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 8)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 8 * page)
            #expect(world.kernel.leaks.pinnedPages == 8)
            let copy = try other.copy(from: world.ioas, iova: mapping.iova, length: 8 * page)
            #expect(world.kernel.leaks.pinnedPages == 8)
            try other.unmap(copy)
            try world.ioas.unmap(mapping)
            #expect(world.kernel.leaks.pinnedPages == 0)
            try world.iommufd.destroy(first.selftestID)
            try world.iommufd.destroy(second.selftestID)
            try world.release(buffer, pages: 8)
        }
    }

    @Test("H5: copying a range that is not fully mapped gives ENOENT")
    func copyOfHoleFails() throws {
        try withMockWorld { world in
            let other = try world.iommufd.allocateIOAS()
            let buffer = try world.memory(pages: 2)
            _ = try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(0x100000))
            #expect(errnoOf { try other.copy(from: world.ioas, iova: IOVA(0x100000), length: 2 * page) } == .noSuchFileOrDirectory)
            #expect(errnoOf { try other.copy(from: world.ioas, iova: IOVA(0x100000), length: 0) } == .invalidArgument)
            _ = try world.ioas.unmapAll()
            try world.release(buffer, pages: 2)
        }
    }

    @Test("H6: pinned pages rise and fall by exactly the mapped pages")
    func pinsFollowMappings() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 10)
            var mappings: [IOASMapping] = []
            for index in 0..<4 {
                mappings.append(try world.ioas.map(userAddress: world.address(buffer) + UInt64(index) * page, length: page))
                #expect(world.kernel.leaks.pinnedPages == UInt64(index + 1))
            }
            // Two mappings of the same page pin it once per mapping's pages object.
            for (index, mapping) in mappings.enumerated() {
                try world.ioas.unmap(mapping)
                #expect(world.kernel.leaks.pinnedPages == UInt64(3 - index))
            }
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 10)
        }
    }

    @Test("H7: the selftest's temporary memory limit has a floor of one batch element (12 bytes, selftest.c:2151-2157)")
    func temporaryMemoryLimit() throws {
        try withMockWorld { world in
            var command = iommu_test_cmd_for_limit(pages: 11)
            #expect(world.rawIoctl(0x3ba0, &command) == .invalidArgument)
            command = iommu_test_cmd_for_limit(pages: 12)
            #expect(world.rawIoctl(0x3ba0, &command) == nil)
            command = iommu_test_cmd_for_limit(pages: 65536)
            #expect(world.rawIoctl(0x3ba0, &command) == nil)
        }
    }
}

import CIOMMUFD

func iommu_test_cmd_for_limit(pages: UInt32) -> iommu_test_cmd {
    var command = iommu_test_cmd()
    command.size = UInt32(MemoryLayout<iommu_test_cmd>.size)
    command.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT
    command.memory_limit.limit = pages
    return command
}

@Suite("Memlock limit changes through the seam")
struct MemlockLimitChangeTests {
    @Test("lowering the soft limit works; raising the hard limit unprivileged is EPERM; soft above hard is EINVAL")
    func setrlimitRules() throws {
        var configuration = MockKernel.Configuration()
        configuration.memlockLimit = 64 << 10
        configuration.memlockMaximum = 1 << 20
        let kernel = MockKernel(configuration: configuration)
        try kernel.setMemoryLockLimit(ResourceLimit(current: 16 << 10, maximum: 1 << 20))
        #expect(try kernel.memoryLockLimit() == ResourceLimit(current: 16 << 10, maximum: 1 << 20))
        #expect(throws: Errno.notPermitted) { try kernel.setMemoryLockLimit(ResourceLimit(current: 16 << 10, maximum: 2 << 20)) }
        #expect(throws: Errno.invalidArgument) { try kernel.setMemoryLockLimit(ResourceLimit(current: 2 << 20, maximum: 1 << 20)) }
        #expect(try kernel.memoryLockLimit().current == 16 << 10)
    }

    @Test("with CAP_SYS_RESOURCE the hard limit may be raised")
    func raiseWithSysResource() throws {
        var configuration = MockKernel.Configuration()
        configuration.hasSysResource = true
        let kernel = MockKernel(configuration: configuration)
        try kernel.setMemoryLockLimit(ResourceLimit(current: nil, maximum: nil))
        #expect(try kernel.memoryLockLimit() == ResourceLimit(current: nil, maximum: nil))
    }

    @Test("effective capabilities come from CapEff in /proc/self/status")
    func capabilities() throws {
        var configuration = MockKernel.Configuration()
        configuration.files["/proc/self/status"] = Array("Name:\tx\nCapEff:\t0000000001004000\n".utf8)
        let capabilities = try #require(ProcessCapabilities(system: MockKernel(configuration: configuration)))
        #expect(capabilities.hasIPCLock && capabilities.hasSysResource && !capabilities.isUnprivileged)
        // The model serves its own status when the configuration gives none: no capabilities by default.
        #expect(ProcessCapabilities(system: MockKernel())?.isUnprivileged == true)
        var unreadable = MockKernel.Configuration()
        unreadable.files["/proc/self/status"] = Array("Name:\tx\n".utf8)
        #expect(ProcessCapabilities(system: MockKernel(configuration: unreadable)) == nil, "no CapEff line")
    }
}
