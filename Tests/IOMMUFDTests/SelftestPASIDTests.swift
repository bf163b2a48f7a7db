import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// The selftest's PASID operations on MockKernel, walked as the kernel's
/// `iommufd_device_pasid.pasid_attach` test walks them (iommufd.c:3357-3613), each errno
/// where 7.3 decides it (device.c, iommu.c, selftest.c). Group S of the scenarios runs the
/// same rules on 7.3.4 in the VM.
@Suite("PASID attach, replace and detach on MockKernel's selftest devices")
struct SelftestPASIDTests {
    @Test("pasid_attach's walk: compatibility, busy, replace, the rigged PASID 1024 and the width")
    func pasidAttachWalk() throws {
        try withMockWorld { world in
            let fd = world.iommufd
            let device = try world.ioas.selftestAttachMockDomain(flags: .pasid)
            let pasid = try #require(PASID(rawValue: 100))
            let parent = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent])
            let s2 = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.pasid])
            let nested = try parent.allocateNested(for: device.deviceID, data: SelftestNestedTable(), flags: [.pasid])

            // Nothing attached: detach is silent and check sees nothing (iommufd.c:3374).
            try fd.selftestDetachPASID(pasid, of: device)
            try fd.selftestCheckPASID(pasid, of: device, isOn: nil)
            // The RID on a table that does not take PASIDs refuses them (device.c:536-538).
            try fd.selftestReplace(device.selftestID, with: parent.id.rawValue)
            #expect(errnoOf { try fd.selftestAttachPASID(pasid, of: device, to: s2.id) } == .invalidArgument)
            // And a PASID pins the RID to compatible tables (device.c:523-529).
            try fd.selftestReplace(device.selftestID, with: s2.id.rawValue)
            try fd.selftestAttachPASID(pasid, of: device, to: nested.id)
            #expect(errnoOf { try fd.selftestReplace(device.selftestID, with: parent.id.rawValue) } == .invalidArgument)
            // Attaching an attached PASID is EBUSY, whatever the target (device.c:708-712).
            #expect(errnoOf { try fd.selftestAttachPASID(pasid, of: device, to: s2.id) } == .resourceBusy)
            #expect(errnoOf { try fd.selftestAttachPASID(pasid, of: device, to: nested.id) } == .resourceBusy)
            // Replace moves it; the HWPT it is on is held (EBUSY to destroy).
            try fd.selftestAttachPASID(pasid, of: device, to: s2.id, replace: true)
            try fd.selftestCheckPASID(pasid, of: device, isOn: s2.id)
            #expect(errnoOf { try fd.selftestCheckPASID(pasid, of: device, isOn: nested.id) } == .invalidArgument)
            try fd.selftestDetachPASID(pasid, of: device)
            // A replace of an unattached PASID is EINVAL (device.c:872-876).
            #expect(errnoOf { try fd.selftestAttachPASID(pasid, of: device, to: s2.id, replace: true) } == .invalidArgument)

            // The rigged PASID: the attach arms it, the replace fails ENOMEM and keeps the old
            // table, the next succeeds (selftest.c:252-289, iommu.c:3785-3789).
            let rigged = try #require(PASID(rawValue: IOMMU_TEST_PASID_RESERVED))
            try fd.selftestAttachPASID(rigged, of: device, to: s2.id)
            #expect(errnoOf { try fd.selftestAttachPASID(rigged, of: device, to: nested.id, replace: true) } == .noMemory)
            try fd.selftestCheckPASID(rigged, of: device, isOn: s2.id)
            try fd.selftestAttachPASID(rigged, of: device, to: nested.id, replace: true)
            try fd.selftestCheckPASID(rigged, of: device, isOn: nested.id)
            try fd.selftestDetachPASID(rigged, of: device)

            // The width: 2^20 PASIDs (MOCK_PASID_WIDTH), EINVAL past it (iommu.c:3666-3669).
            let last = try #require(PASID(rawValue: (1 << MOCK_PASID_WIDTH) - 1))
            try fd.selftestAttachPASID(last, of: device, to: s2.id)
            #expect(errnoOf { try fd.selftestAttachPASID(PASID(rawValue: 1 << MOCK_PASID_WIDTH)!, of: device, to: s2.id) } == .invalidArgument)
            try fd.selftestDetachPASID(last, of: device)

            try fd.selftestReplace(device.selftestID, with: world.ioas.id.rawValue)
            try fd.destroy(device.selftestID)
            try nested.destroy()
            try s2.destroy()
            try parent.destroy()
        }
    }

    @Test("a mock device without MOCK_FLAGS_DEVICE_PASID has max_pasids 1: PASID 1 is EINVAL even on compatible tables (selftest.c:984-1020, iommu.c:438-454)")
    func plainDeviceHasOnePASID() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let s2 = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.pasid])
            try world.iommufd.selftestReplace(device.selftestID, with: s2.id.rawValue)
            #expect(errnoOf { try world.iommufd.selftestAttachPASID(PASID(rawValue: 1)!, of: device, to: s2.id) } == .invalidArgument)
            try world.iommufd.destroy(device.selftestID)
            try s2.destroy()
        }
    }

    @Test("destroying a mock device detaches only its RID (selftest.c:1944-1957): a PASID's HWPT stays busy until the context closes, which frees everything")
    func destroyDetaches() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain(flags: .pasid)
            let s2 = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.pasid])
            let other = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.pasid])
            try world.iommufd.selftestReplace(device.selftestID, with: s2.id.rawValue)
            try world.iommufd.selftestAttachPASID(PASID(rawValue: 9)!, of: device, to: other.id)
            #expect(errnoOf { try other.destroy() } == .resourceBusy)
            try world.iommufd.destroy(device.selftestID)
            try s2.destroy()
            #expect(errnoOf { try other.destroy() } == .resourceBusy)
        }
    }
}
