import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO

/// PASIDs allocated by property from a space each iommufd context owns.
@Suite("PASID spaces")
struct PASIDSpaceTests {
    /// A device id for spaces registered by width (no kernel call).
    static func device(_ raw: UInt32) -> IOMMUObjectID<DeviceObject> { IOMMUObjectID(rawValue: raw) }
    static func pasid(_ raw: UInt32) -> PASID { PASID(rawValue: raw)! }

    @Test("widths come from GET_HW_INFO: a selftest device with a PASID capability takes [1, 2^20), a plain one none; the space refuses PASIDs for it itself (the kernel would accept an attach and ignore it)")
    func widthsFromHardwareInfo() throws {
        try withMockWorld { world in
            let fd = world.iommufd.fileDescriptor.rawValue
            let capable = try SelftestIOCTL.mockDomainFlags(world.iommufd.seam, fd, pageTable: world.ioas.id.rawValue, flags: 4, fileID: #fileID, line: #line)
            let plain = try world.ioas.selftestAttachMockDomain()
            let space = PASIDSpace(iommufd: world.iommufd)
            let capableID = IOMMUObjectID<DeviceObject>(rawValue: capable.deviceID)
            try space.register(capableID)
            try space.register(plain.deviceID)
            #expect(space.pasidWidth(of: capableID) == 20 && space.pasidWidth(of: plain.deviceID) == 0)
            #expect(try space.allocate(.device(capableID)) == Self.pasid(1))
            #expect(throws: PASIDSpaceError(reason: .noPASIDSupport(plain.deviceID))) { try space.allocate(.device(plain.deviceID)) }
            #expect(throws: PASIDSpaceError(reason: .noPASIDSupport(plain.deviceID))) { try space.allocate(.allRIDs) }
            #expect(throws: PASIDSpaceError(reason: .unavailable(Self.pasid(1 << 20), .device(capableID)))) {
                try space.allocate(.device(capableID), preferring: Self.pasid(1 << 20))
            }
            try world.iommufd.destroy(SelftestID(rawValue: capable.selftestID))
            try world.iommufd.destroy(plain.selftestID)
        }
    }

    @Test("PASID 0 is the RID: it cannot be named, so never handed out or accepted")
    func zeroIsTheRID() throws {
        #expect(PASID(rawValue: 0) == nil)
        try withMockWorld { world in
            let space = PASIDSpace(iommufd: world.iommufd)
            try space.register(Self.device(1), pasidWidth: 1)
            #expect(try space.allocate(.device(Self.device(1))) == Self.pasid(1), "width 1 leaves exactly PASID 1")
            #expect(throws: PASIDSpaceError(reason: .exhausted(.device(Self.device(1)), width: 1))) { try space.allocate(.device(Self.device(1))) }
        }
    }

    @Test("device scope is the IOMMU group's namespace: devices of one group never share a value, other groups may use it")
    func deviceScopeIsTheGroup() throws {
        try withMockWorld { world in
            let space = PASIDSpace(iommufd: world.iommufd)
            try space.register(Self.device(1), pasidWidth: 8, group: 5)
            try space.register(Self.device(2), pasidWidth: 8, group: 5)
            try space.register(Self.device(3), pasidWidth: 8, group: 6)
            let first = try space.allocate(.device(Self.device(1)))
            #expect(try space.allocate(.device(Self.device(2))) != first, "same group")
            #expect(try space.allocate(.device(Self.device(3)), preferring: first) == first, "another group may take the same value")
            #expect(throws: PASIDSpaceError(reason: .unavailable(first, .device(Self.device(2))))) { try space.allocate(.device(Self.device(2)), preferring: first) }
        }
    }

    @Test("all-RIDs PASIDs: free in every group, below the narrowest width, reserved in every group, also in groups registered later; a device too narrow for one is refused with the PASID named")
    func allRIDs() throws {
        try withMockWorld { world in
            let space = PASIDSpace(iommufd: world.iommufd)
            try space.register(Self.device(1), pasidWidth: 20, group: 1)
            try space.register(Self.device(2), pasidWidth: 3, group: 2)
            let one = try space.allocate(.device(Self.device(1)))
            let two = try space.allocate(.device(Self.device(2)), preferring: Self.pasid(2))
            let shared = try space.allocate(.allRIDs)
            #expect(shared != one && shared != two && shared.rawValue < 8, "free in both groups, below 2^3: \(shared)")
            #expect(throws: PASIDSpaceError(reason: .unavailable(shared, .device(Self.device(1))))) { try space.allocate(.device(Self.device(1)), preferring: shared) }
            try space.register(Self.device(3), pasidWidth: 20, group: 3)
            #expect(throws: PASIDSpaceError(reason: .unavailable(shared, .device(Self.device(3))))) { try space.allocate(.device(Self.device(3)), preferring: shared) }
            let wide = try space.allocate(.allRIDs, preferring: Self.pasid(7))
            #expect(throws: PASIDSpaceError(reason: .tooNarrow(Self.device(4), width: 2, pasid: wide))) { try space.register(Self.device(4), pasidWidth: 2, group: 4) }
            try space.release(wide, .allRIDs)
            try space.register(Self.device(4), pasidWidth: 2, group: 4)
            #expect(throws: PASIDSpaceError(reason: .unavailable(Self.pasid(7), .allRIDs))) { try space.allocate(.allRIDs, preferring: Self.pasid(7)) }
            #expect(throws: PASIDSpaceError(reason: .notAllocated(wide, .allRIDs))) { try space.release(wide, .allRIDs) }
        }
    }

    @Test("a released value waits: fresh values come first, then released ones oldest first")
    func releasedValuesWait() throws {
        try withMockWorld { world in
            let space = PASIDSpace(iommufd: world.iommufd)
            let device = Self.device(1)
            try space.register(device, pasidWidth: 2)
            let values = try (0..<3).map { _ throws(PASIDSpaceError) in try space.allocate(.device(device)) }
            #expect(values == [1, 2, 3].map(Self.pasid))
            try space.release(Self.pasid(2), .device(device))
            try space.release(Self.pasid(1), .device(device))
            #expect(try space.allocate(.device(device)) == Self.pasid(2), "the oldest released")
            #expect(try space.allocate(.device(device)) == Self.pasid(1))
            try space.release(Self.pasid(3), .device(device))
            let wider = PASIDSpace(iommufd: world.iommufd)
            try wider.register(device, pasidWidth: 3)
            #expect(try wider.allocate(.device(device)) == Self.pasid(1), "each context owns its space: no global singleton")
        }
    }

    @Test("VFIO caps PASIDs at INT_MAX: a 32-bit width takes 0x7fffffff, not 0x80000000")
    func intMaxCap() throws {
        try withMockWorld { world in
            let space = PASIDSpace(iommufd: world.iommufd)
            let device = Self.device(1)
            try space.register(device, pasidWidth: 32)
            #expect(try space.allocate(.device(device), preferring: Self.pasid(0x7fff_ffff)) == Self.pasid(0x7fff_ffff))
            #expect(throws: PASIDSpaceError(reason: .unavailable(Self.pasid(0x8000_0000), .device(device)))) {
                try space.allocate(.device(device), preferring: Self.pasid(0x8000_0000))
            }
        }
    }

    @Test("unregistering releases the device's own PASIDs; the errors say what to do")
    func unregister() throws {
        try withMockWorld { world in
            let space = PASIDSpace(iommufd: world.iommufd)
            let device = Self.device(1)
            try space.register(device, pasidWidth: 4, group: 9)
            let value = try space.allocate(.device(device))
            space.unregister(device)
            #expect(throws: PASIDSpaceError(reason: .deviceNotRegistered(device))) { try space.allocate(.device(device)) }
            try space.register(device, pasidWidth: 4, group: 9)
            #expect(try space.allocate(.device(device), preferring: value) == value, "free again")
            #expect(PASIDSpaceError(reason: .noPASIDSupport(device)).description.contains("Fix:"))
            #expect(throws: PASIDSpaceError(reason: .noDevices)) { try PASIDSpace(iommufd: world.iommufd).allocate(.allRIDs) }
        }
    }
}

/// PASID leases on VFIO devices, on MockKernel's functions.
@Suite("PASID leases")
struct PASIDLeaseTests {
    static func machine(pasidWidth: Int) -> MockKernel {
        var configuration = MockKernel.Configuration()
        var function = MockKernel.PCIDevice.edu()
        function.pasidWidth = pasidWidth
        configuration.addPCIDevice(function)
        return MockKernel(configuration: configuration)
    }

    @Test("a function without PASID support (QEMU 7.2's edu): the lease is refused here with EOPNOTSUPP and why, though the kernel would accept the attach and ignore it (scenario S2)")
    func refusedWithoutPASIDSupport() throws {
        let kernel = Self.machine(pasidWidth: 0)
        try withClaimed(kernel, edu) { ioas, claimed, _ in
            let device = try #require(claimed.device.deviceID)
            let hwpt = try ioas.allocateHWPT(for: device, flags: [.pasid])
            _ = try claimed.device.attach(to: hwpt)
            do throws(IOMMUError) {
                _ = try claimed.device.attachPASID(PASID(rawValue: 1)!, to: hwpt)
                Issue.record("a device without PASIDs must be refused")
            } catch {
                #expect(error.errno == .notSupported)
                #expect(error.explanation?.meaning.contains("takes no PASIDs") == true, "\(error)")
            }
            _ = try claimed.device.attach(to: ioas)
            try hwpt.destroy()
        }
    }

    @Test("a PASID-capable function: the RID must be on a PASID-capable HWPT first; the lease holds its HWPT, replaces without a detach, keeps the RID off incompatible page tables, and detaches when dropped")
    func leaseLifecycle() throws {
        let kernel = Self.machine(pasidWidth: 8)
        try withClaimed(kernel, edu) { ioas, claimed, _ in
            let device = try #require(claimed.device.deviceID)
            let first = try ioas.allocateHWPT(for: device, flags: [.pasid])
            let second = try ioas.allocateHWPT(for: device, flags: [.pasid])
            let plain = try ioas.allocateHWPT(for: device)
            let space = PASIDSpace(iommufd: ioas.iommufd)
            try space.register(device)
            let pasid = try space.allocate(.device(device))
            _ = try claimed.device.attach(to: ioas)
            #expect(errnoOf { _ = try claimed.device.attachPASID(pasid, to: first) } == .invalidArgument, "the RID is on an automatic HWPT")
            _ = try claimed.device.attach(to: first)
            #expect(errnoOf { _ = try claimed.device.attachPASID(pasid, to: plain) } == .invalidArgument, "the target takes no PASIDs")
            #expect(errnoOf { _ = try claimed.device.attachPASID(PASID(rawValue: 256)!, to: first) } == .invalidArgument, "past the 8-bit width")
            do {
                var lease = try claimed.device.attachPASID(pasid, to: first)
                #expect(errnoOf { try second.destroy() } == nil)
                let third = try ioas.allocateHWPT(for: device, flags: [.pasid])
                try lease.replace(with: third)
                #expect(lease.pageTable.id == third.id)
                #expect(errnoOf { try third.destroy() } == .resourceBusy, "the PASID holds it")
                #expect(errnoOf { _ = try claimed.device.attach(to: ioas) } == .invalidArgument, "refused here: the RID must stay PASID-capable")
                #expect(errnoOf { _ = try claimed.device.attach(to: plain) } == .invalidArgument)
                try lease.detach()
                #expect(errnoOf { try third.destroy() } == nil)
            }
            do {
                let lease = try claimed.device.attachPASID(pasid, to: first)
                _ = lease
            }
            _ = try claimed.device.attach(to: ioas)
            try first.destroy()
            try plain.destroy()
            try space.release(pasid, .device(device))
        }
    }
}

/// The kernel rule the typed lease stops before: the IOMMU layer's range check.
@Suite("VFIO PASID attach on a PASID-capable mock function")
struct VFIOPASIDRangeTests {
    @Test("past max_pasids the IOMMU layer answers EINVAL (iommu.c:3666-3669); below it the attach holds its HWPT; QEMU 7.2 has no such function, so the VM cannot compare this one")
    func pastTheWidthIsEINVAL() throws {
        let kernel = PASIDLeaseTests.machine(pasidWidth: 8)
        try withClaimed(kernel, edu) { ioas, claimed, _ in
            let device = try #require(claimed.device.deviceID)
            let hwpt = try ioas.allocateHWPT(for: device, flags: [.pasid])
            _ = try claimed.device.attach(to: hwpt)
            let seam = claimed.device.seam, fd = claimed.device.fileDescriptor.rawValue
            #expect(errnoOf { _ = try VFIODeviceIOCTL.attach(seam, fd, pageTable: hwpt.id.rawValue, pasid: 256, fileID: #fileID, line: #line) } == .invalidArgument)
            #expect(errnoOf { _ = try VFIODeviceIOCTL.attach(seam, fd, pageTable: hwpt.id.rawValue, pasid: 255, fileID: #fileID, line: #line) } == nil)
            #expect(errnoOf { try hwpt.destroy() } == .resourceBusy)
            try VFIODeviceIOCTL.detach(seam, fd, pasid: 255, fileID: #fileID, line: #line)
            _ = try claimed.device.attach(to: ioas)
            try hwpt.destroy()
        }
    }
}
