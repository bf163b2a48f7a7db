import CIOMMUFD
import Scenarios
import SystemPackage
@_spi(Selftest) import IOMMUFD
import MockKernel
import Testing

/// Nested HWPTs and cache invalidation on MockKernel's selftest IOMMU, each rule with the
/// kernel's errno and where 7.3 decides it. The VM lane compares the same walk
/// (`NestedHWPTProbe`) and the R-group scenarios with the kernel.
@Suite("nested HWPTs and invalidation on MockKernel's selftest IOMMU")
struct NestedHWPTTests {
    @Test("alloc_hwpt_nested's walk through the typed API: what 7.3 answered in the VM, line by line")
    func asTheKernelAnswered() throws {
        try expectMockAnswersAsLinux(NestedHWPTProbe.lines, linuxAnswer: NestedHWPTProbe.linuxAnswer)
    }

    /// A raw `IOMMU_HWPT_ALLOC` of selftest nested data on `parent`.
    static func allocNested(_ world: MockWorld, device: IOMMUObjectID<DeviceObject>, parent: HWPTID, flags: UInt32 = 0, dataType: UInt32 = IOMMU_HWPT_DATA_SELFTEST,
                            length: UInt32 = 8, address: UInt64? = nil) -> Errno? {
        var data = iommu_hwpt_selftest(iotlb: IOMMU_TEST_IOTLB_DEFAULT, pagetable_type: 0)
        return withUnsafeMutableBytes(of: &data) { bytes in
            var alloc = iommu_hwpt_alloc()
            alloc.size = UInt32(MemoryLayout<iommu_hwpt_alloc>.size)
            alloc.flags = flags
            alloc.dev_id = device.rawValue
            alloc.pt_id = parent.rawValue
            alloc.data_type = dataType
            alloc.data_len = length
            alloc.data_uptr = address ?? UInt64(UInt(bitPattern: bytes.baseAddress))
            return world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc)
        }
    }

    @Test("nested data: a type other than the driver's EOPNOTSUPP (selftest.c:350), shorter than its first field or longer than the struct EINVAL (iommu.h:474), a NULL pointer EFAULT; flags other than PASID EOPNOTSUPP (hw_pagetable.c:248)")
    func nestedDataRules() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let parent = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent])
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, dataType: IOMMU_HWPT_DATA_SELFTEST + 1) == .notSupported)
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, length: 3) == .invalidArgument)
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, length: 9) == .invalidArgument)
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, address: 0) == .badAddress)
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING) == .notSupported)
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, flags: IOMMU_HWPT_ALLOC_PASID) == nil)
            #expect(Self.allocNested(world, device: device.deviceID, parent: parent.id, flags: IOMMU_HWPT_FAULT_ID_VALID) == .noSuchFileOrDirectory,
                    "the fault queue is looked up after the HWPT exists; none has that id")
            #expect(Self.allocNested(world, device: device.deviceID, parent: device.hwptID) == .invalidArgument, "an automatic domain is no parent")
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("invalidation: entries of another length EINVAL before any is handled, the handled count with the error, a paging HWPT EINVAL even with no entries, an unknown id ENOENT (hw_pagetable.c:508-576, selftest.c:873-919)")
    func invalidationRules() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let parent = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent])
            let nested = try parent.allocateNested(for: device.deviceID, data: SelftestNestedTable(iotlb: 7))
            #expect(nested.acceptsInvalidations(of: SelftestInvalidation.self))
            #expect(!nested.acceptsInvalidations(of: VTDStage1Invalidation.self), "another driver's format is EINVAL, also with no entries")
            do throws(IOMMUError) {
                try nested.invalidate([SelftestInvalidation(iotlbID: 2), SelftestInvalidation(iotlbID: 9), SelftestInvalidation(iotlbID: 3)])
                Issue.record("an IOTLB id past 3 must be refused")
            } catch {
                #expect(error.errno == .invalidArgument)
                #expect(error.context.handledCount == 1, "the kernel stops at the first bad entry and says how many went before")
            }
            try world.iommufd.selftestCheckIOTLB(nested.id, iotlbID: 2, equals: 0)
            try world.iommufd.selftestCheckIOTLB(nested.id, iotlbID: 3, equals: 7)
            #expect(errnoOf { try world.iommufd.selftestCheckIOTLB(nested.id, iotlbID: 4, equals: 7) } == .invalidArgument)
            #expect(errnoOf { _ = try world.iommufd.invalidateCaches(of: parent.id.rawValue, [SelftestInvalidation](), fileID: #fileID, line: #line) } == .invalidArgument)
            #expect(errnoOf { _ = try world.iommufd.invalidateCaches(of: 999, [SelftestInvalidation.all], fileID: #fileID, line: #line) } == .noSuchFileOrDirectory)
            #expect(try nested.invalidate([SelftestInvalidation.all]) == 1)
            try world.iommufd.selftestCheckIOTLB(nested.id, iotlbID: 3, equals: 0)
            try nested.destroy()
            try parent.destroy()
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("device flags: a NO_DIRTY mock device refuses dirty-tracking HWPTs (EOPNOTSUPP) and reports no dirty capability; a PASID one reports a 20-bit PASID width (selftest.c:983-1020, device.c:1705-1723)")
    func mockDeviceFlags() throws {
        try withMockWorld { world in
            let answer = try SelftestIOCTL.mockDomainFlags(world.iommufd.seam, world.iommufd.fileDescriptor.rawValue, pageTable: world.ioas.id.rawValue,
                                                           flags: 1, fileID: #fileID, line: #line)
            let noDirty = IOMMUObjectID<DeviceObject>(rawValue: answer.deviceID)
            #expect(errnoOf { _ = try world.ioas.allocateHWPT(for: noDirty, flags: [.dirtyTracking]) } == .notSupported)
            #expect(try !world.iommufd.hardwareInfo(of: noDirty).capabilities.contains(.dirtyTracking))
            let pasid = try SelftestIOCTL.mockDomainFlags(world.iommufd.seam, world.iommufd.fileDescriptor.rawValue, pageTable: world.ioas.id.rawValue,
                                                          flags: 4, fileID: #fileID, line: #line)
            #expect(try world.iommufd.hardwareInfo(of: IOMMUObjectID<DeviceObject>(rawValue: pasid.deviceID)).maxPASIDLog2 == 20)
            let dirty = try world.ioas.allocateHWPT(for: IOMMUObjectID<DeviceObject>(rawValue: pasid.deviceID), flags: [.dirtyTracking])
            #expect(errnoOf { _ = try world.iommufd.selftestReplace(SelftestID(rawValue: answer.selftestID), with: dirty.id.rawValue) } == .invalidArgument,
                    "mock_domain_nop_attach: a NO_DIRTY device refuses a domain with dirty operations")
            try dirty.destroy()
            try world.iommufd.destroy(SelftestID(rawValue: answer.selftestID))
            try world.iommufd.destroy(SelftestID(rawValue: pasid.selftestID))
        }
    }
}

@Suite("a vIOMMU on MockKernel's selftest IOMMU")
struct VIOMMUMockTests {
    @Test("the iommufd_viommu fixture's walk through the typed API: what 7.3 answered in the VM, line by line")
    func asTheKernelAnswered() throws {
        try expectMockAnswersAsLinux(VIOMMUProbe.lines, linuxAnswer: VIOMMUProbe.linuxAnswer)
    }
}
