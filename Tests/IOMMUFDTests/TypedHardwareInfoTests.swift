import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO

/// `IOMMUFD.hardwareInfo(of:)`: GET_HW_INFO decoded per vendor, and the HWPT formats a
/// device can take, read from it.
@Suite("typed hardware info and page-table formats")
struct TypedHardwareInfoTests {
    @Test("edu behind QEMU 7.2's intel-iommu: VT-d with the errata flag, MGAW and SAGAW 39, no caching mode, no scalable mode, so paging HWPTs only (PASID flag allowed, no nesting parent, no dirty tracking), no ATS, no PASIDs")
    func qemuVTd() throws {
        let kernel = pciMachine()
        let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
        guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
        let function = try context.claim(edu)
        let device = try #require(function.device.deviceID)
        let info = try ioas.iommufd.hardwareInfo(of: device)
        #expect(info.kind == .intelVTd)
        guard case .intelVTd(let vtd) = info.vendor else { Issue.record("not VT-d: \(info.vendor)"); return }
        #expect(vtd.flags == IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17)
        #expect(vtd.maximumGuestAddressWidth == 39 && vtd.supportedAddressWidths == [39])
        #expect(!vtd.cachingMode && !vtd.scalableMode && !vtd.nestingCapable && !vtd.dirtyTrackingCapable)
        #expect(info.capabilities == [.atsNotSupported] && info.maxPASIDLog2 == 0)
        let formats = PageTableFormats(info)
        #expect(formats.pagingFlags == [.pasid] && formats.nestedFormats.isEmpty && !formats.takesPASIDs)
        // Asking for the type it serves is the same answer; another type is EOPNOTSUPP (device.c:1668-1672).
        #expect(try ioas.iommufd.hardwareInfo(of: device, kind: .intelVTd) == info)
        #expect(errnoOf { try ioas.iommufd.hardwareInfo(of: device, kind: .armSMMUv3) } == .notSupported)
        #expect(errnoOf { try ioas.iommufd.hardwareInfo(of: DeviceID(rawValue: 999)) } == .noSuchFileOrDirectory)
    }

    @Test("the selftest mock device: type 0xfeedbeef with test_reg 0xdeadbeef, dirty tracking; nesting parent, dirty tracking and PASID HWPTs, nested selftest data")
    func selftestDevice() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let info = try world.iommufd.hardwareInfo(of: device.deviceID)
            #expect(info.kind == .selftest && info.kind.rawValue == 0xfeed_beef)
            #expect(info.vendor == .selftest(testRegister: 0xdead_beef))
            #expect(info.capabilities.contains(.dirtyTracking))
            let formats = PageTableFormats(info)
            #expect(formats.pagingFlags == [.nestParent, .dirtyTracking, .pasid])
            #expect(formats.nestedFormats == [.selftest])
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("one HWPT for several devices: the formats all take behind the same IOMMU, none across IOMMU kinds")
    func sharedFormats() throws {
        let qemu = HardwareInfo(kind: .intelVTd, data: [], capabilities: IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, maxPASIDLog2: 0)
        let selftest = HardwareInfo(kind: .selftest, data: [0, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde], capabilities: IOMMU_HW_CAP_DIRTY_TRACKING, maxPASIDLog2: 20)
        #expect(selftest.vendor == .selftest(testRegister: 0xdead_beef))
        var noDirty = selftest
        noDirty.capabilities = []
        #expect(PageTableFormats.shared(by: [qemu, selftest]) == nil, "different IOMMU drivers: no one HWPT")
        let both = try #require(PageTableFormats.shared(by: [selftest, noDirty]))
        #expect(both.pagingFlags == [.nestParent, .pasid], "dirty tracking only if every device has it")
        #expect(both.takesPASIDs && both.nestedFormats == [.selftest])
    }

    @Test("vendor registers decode as the drivers read them: VT-d scalable mode with NEST, SLADS and SMPWC; SMMUv3 with both stages and HTTU; AMD with GT")
    func vendorDecoding() {
        let scalable = VTdRegisters(flags: 0, capability: 0, extendedCapability: 1 << 43 | 1 << 26 | 1 << 45 | 1 << 48 | 1 << 47 | 1 << 46 | 1 << 40 | 19 << 35)
        #expect(scalable.nestingCapable && scalable.dirtyTrackingCapable && scalable.firstStage && scalable.secondStage && scalable.pasidBits == 20)
        let legacyNest = VTdRegisters(flags: 0, capability: 0, extendedCapability: 1 << 26)
        #expect(!legacyNest.nestingCapable, "NEST without scalable mode is no nesting parent (intel/iommu.h:537-538)")
        let smmu = SMMUv3Registers(flags: 0, idr: [0b11 | 2 << 6, 0, 0, 0, 0, 5], iidr: 0, aidr: 0)
        #expect(smmu.nesting && smmu.hardwareTranslationTableUpdate == 2 && smmu.outputAddressBits == 48)
        #expect(AMDRegisters(extendedFeatures: 1 << 4, extendedFeatures2: 0).guestTranslation)
        var smmuInfo = HardwareInfo(kind: .none, data: [], capabilities: 0, maxPASIDLog2: 0)
        smmuInfo.kind = .armSMMUv3
        smmuInfo.vendor = .armSMMUv3(smmu)
        #expect(PageTableFormats(smmuInfo).nestedFormats == [.armSMMUv3])
        #expect(HardwareInfo.Kind(rawValue: 77) == .other(77) && HardwareInfo.Kind(rawValue: 4) == .amd)
    }
}

/// Paging HWPTs through the typed API: allocate what the device's IOMMU takes, attach and
/// replace a device's RID attachment between them, destroy in the kernel's order.
@Suite("typed paging HWPTs")
struct HWPTTests {
    @Test("edu: HWPTs for its IOMMU allocate with the flags PageTableFormats names and are refused (EOPNOTSUPP) with the others; edu moves between two HWPTs without a detach; a HWPT in use is EBUSY")
    func replaceBetweenHWPTs() throws {
        let kernel = pciMachine()
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
            let function = try context.claim(edu)
            let device = try #require(function.device.deviceID)
            let formats = PageTableFormats(try ioas.iommufd.hardwareInfo(of: device))
            let first = try ioas.allocateHWPT(for: device)
            let second = try ioas.allocateHWPT(for: device, flags: formats.pagingFlags)
            #expect(second.flags == [.pasid])
            for refused: PagingHWPTFlags in [.nestParent, .dirtyTracking] where !formats.pagingFlags.contains(refused) {
                #expect(errnoOf { try ioas.allocateHWPT(for: device, flags: refused) } == .notSupported, "\(refused)")
            }
            #expect(try function.device.attach(to: first.id) == first.id)
            #expect(errnoOf { try first.destroy() } == .resourceBusy)
            #expect(try function.device.attach(to: second.id) == second.id, "a second attach replaces")
            try first.destroy()
            #expect(errnoOf { try first.destroy() } == .noSuchFileOrDirectory, "a destroyed handle refuses")
            #expect(try function.device.attach(to: ioas) != second.id, "back to an automatic HWPT of the IOAS")
            try second.destroy()
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("a HWPT outlives nothing it needs: dropped without destroy, its deinitializer destroys it")
    func deinitDestroys() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            do {
                let hwpt = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent, .dirtyTracking])
                #expect(hwpt.flags == [.nestParent, .dirtyTracking])
            }
            #expect(world.kernel.trace.last?.name == "IOMMU_DESTROY")
            try world.iommufd.destroy(device.selftestID)
        }
    }
}

@Suite("dirty tracking through a mock function's DMA")
struct DeviceDirtyTrackingTests {
    @Test("a function behind a VT-d with second-stage dirty bits (iommuTracksDirty): the format query offers dirty tracking, its DMA writes through a tracking HWPT read back as dirty ranges, reads and writes with tracking off leave nothing")
    func dmaWritesSetDirtyBits() throws {
        var configuration = MockKernel.Configuration()
        var function = MockKernel.PCIDevice.edu()
        function.iommuTracksDirty = true
        configuration.addPCIDevice(function)
        let kernel = MockKernel(configuration: configuration)
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
            let claimed = try context.claim(edu)
            let device = try #require(claimed.device.deviceID)
            let info = try ioas.iommufd.hardwareInfo(of: device)
            guard case .intelVTd(let vtd) = info.vendor else { Issue.record("not VT-d: \(info)"); return }
            #expect(vtd.dirtyTrackingCapable && info.capabilities.contains(.dirtyTracking))
            let formats = PageTableFormats(info)
            #expect(formats.pagingFlags.contains(.dirtyTracking))
            let hwpt = try ioas.allocateHWPT(for: device, flags: [.dirtyTracking])
            _ = try claimed.device.attach(to: hwpt.id)
            try claimed.device.setBusMaster(true)
            let memory = try kernel.mmap(address: nil, length: 16 * 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            defer { try? kernel.munmap(memory, length: 16 * 4096) }
            let mapping = try ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: 16 * 4096, at: IOVA(0x40_0000))
            #expect(kernel.pciDeviceWrite(edu.description, iova: 0x40_0000, bytes: [1]), "before tracking")
            try hwpt.setDirtyTracking(true)
            #expect(try hwpt.dirtyPages(of: mapping, pageSize: 4096).dirtyPageCount == 0, "enabling starts from a clean snapshot")
            #expect(kernel.pciDeviceWrite(edu.description, iova: 0x40_0000 + 2 * 4096 + 100, bytes: Array(repeating: 7, count: 5000)))
            #expect(kernel.pciDeviceRead(edu.description, iova: 0x40_0000 + 10 * 4096, length: 64) != nil)
            let dirty = try hwpt.dirtyPages(of: mapping, pageSize: 4096)
            #expect(dirty.dirtyRanges.map { "\($0.iova.rawValue - 0x40_0000)+\($0.length)" } == ["8192+8192"], "pages 2 and 3 were written, page 10 only read")
            #expect(try hwpt.dirtyPages(of: mapping, pageSize: 4096).dirtyPageCount == 0, "the read cleared them")
            try hwpt.setDirtyTracking(false)
            #expect(kernel.pciDeviceWrite(edu.description, iova: 0x40_0000, bytes: [1]))
            #expect(try hwpt.dirtyPages(of: mapping, pageSize: 4096).dirtyPageCount == 0, "tracking off")
            try claimed.device.setBusMaster(false)
            try ioas.unmap(mapping)
            _ = try claimed.device.attach(to: ioas)
            try hwpt.destroy()
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}
