import Edu
import CIOMMUFD
import Foundation
import IOMMUFD
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// GET_HW_INFO and HWPT allocation on the variants of QEMU's intel-iommu the lane boots
    /// besides its own (hw-tests/vm/run with IOMMUFD_VM_IOMMU): scalable mode, and the
    /// device IOTLB with an ATS-capable function behind a root port. Each boot runs only
    /// this suite; the guest says which variant it is (IOMMUFD_IOMMU_MODE).
    @Suite("Hardware: QEMU's intel-iommu variants (scalable mode, device IOTLB)",
           .enabled(if: Hardware.intelIOMMUVariant != nil && Hardware.eduDevice != nil, "needs a VM lane boot with IOMMUFD_VM_IOMMU=scalable or device-iotlb"))
    struct IntelIOMMUVariantTests {
        /// The variant this boot runs.
        static var mode: String? { Hardware.intelIOMMUVariant }
        /// The ATS-capable virtio-rng of the device-iotlb variant.
        static let atsDevice = Hardware.vfioFunctions(vendor: 0x1af4, device: 0x1044).first

        /// The VT-d registers as the guest kernel shows them in sysfs.
        static func sysfsRegisters() throws -> (cap: UInt64, ecap: UInt64) {
            func read(_ name: String) throws -> UInt64 {
                let text = try String(contentsOfFile: "/sys/class/iommu/dmar0/intel-iommu/\(name)", encoding: .utf8)
                return try #require(UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16))
            }
            return (try read("cap"), try read("ecap"))
        }

        /// The typed answer for a function claimed through the cdev.
        static func info(_ address: PCIAddress) throws -> (VFIOPCIDevice, HardwareInfo, VTdRegisters) {
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            let (info, _) = try HardwareInfoTests.typedInfo(owned)
            guard case .intelVTd(let vtd) = info.vendor else { throw HardwareInfoTests.NotThroughIOMMUFD() }
            return (owned, info, vtd)
        }

        @Test("the registers GET_HW_INFO gives are the ones sysfs shows, decoded for the variant: scalable mode on its boot, the device IOTLB on its own")
        func registersMatchSysfs() throws {
            let (_, info, vtd) = try Self.info(try #require(Hardware.eduDevice))
            let sysfs = try Self.sysfsRegisters()
            #expect(vtd.capability == sysfs.cap && vtd.extendedCapability == sysfs.ecap, "\(info)")
            #expect(vtd.scalableMode == (Self.mode == "scalable"), "\(info)")
            #expect(vtd.deviceIOTLB == (Self.mode == "device-iotlb"), "\(info)")
            print("variant \(Self.mode ?? "?"): cap 0x\(String(vtd.capability, radix: 16)) ecap 0x\(String(vtd.extendedCapability, radix: 16)) formats \(PageTableFormats(info))")
        }

        @Test("what the format query promises is what HWPT_ALLOC does: each paging flag it names allocates, every other is EOPNOTSUPP; edu moves between two such HWPTs with DMA round trips")
        func formatsMatchAllocation() throws {
            let (owned, info, _) = try Self.info(try #require(Hardware.eduDevice))
            guard case .iommufd(let ioas) = owned.context.addressSpace, let device = owned.device.deviceID else { throw HardwareInfoTests.NotThroughIOMMUFD() }
            let formats = PageTableFormats(info)
            for flag in [PagingHWPTFlags.nestParent, .dirtyTracking, .pasid] {
                let outcome: Errno? = { do throws(IOMMUError) { try ioas.allocateHWPT(for: device, flags: flag).destroy(); return nil } catch { return error.errno } }()
                if formats.pagingFlags.contains(flag) {
                    #expect(outcome == nil, "\(flag) promised: \(info)")
                } else {
                    #expect(outcome == .notSupported, "\(flag) not promised: \(String(describing: outcome)) \(info)")
                }
            }
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            let buffer = Hardware.pinnableBuffer(byteCount: 4096)
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            func roundTrip(_ seed: UInt8) throws -> Bool { try edu.roundTrip(buffer, at: mapping.iova, seed: seed) }
            let first = try ioas.allocateHWPT(for: device)
            let second = try ioas.allocateHWPT(for: device, flags: formats.pagingFlags.intersection([.pasid]))
            #expect(try owned.device.attach(to: first.id) == first.id)
            #expect(try roundTrip(1), "on the first HWPT")
            #expect(try owned.device.attach(to: second.id) == second.id)
            #expect(try roundTrip(2), "on the second, replaced without a detach")
            _ = try owned.device.attach(to: ioas)
            try first.destroy()
            try second.destroy()
            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
        }

        @Test("device-iotlb: the ATS-capable function behind a root port has \"ATS not supported\" cleared; edu (no ATS capability) keeps it",
              .enabled(if: Hardware.intelIOMMUVariant == "device-iotlb"))
        func atsCapabilityFollowsTheFunction() throws {
            let address = try #require(Self.atsDevice, "the device-iotlb boot has a virtio-rng (1af4:1044) bound to vfio-pci")
            let (_, atsInfo, _) = try Self.info(address)
            #expect(!atsInfo.capabilities.contains(.atsNotSupported), "\(atsInfo)")
            let (_, eduInfo, _) = try Self.info(try #require(Hardware.eduDevice))
            #expect(eduInfo.capabilities.contains(.atsNotSupported), "\(eduInfo)")
        }
    }
}
