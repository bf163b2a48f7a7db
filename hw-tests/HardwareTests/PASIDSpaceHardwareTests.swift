import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// A PASID space over the kernel selftest's mock devices, on this kernel and on MockKernel.
    @Suite("Hardware: PASID spaces over selftest devices, kernel and mock", .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
    struct PASIDSpaceHardwareTests {
        /// Registers a PASID-capable and a plain mock device and allocates from both scopes.
        static func lines(system: any SystemInterface) throws -> [String] {
            let iommufd = try IOMMUFD(system: system)
            let ioas = try iommufd.allocateIOAS()
            let capable = try SelftestIOCTL.mockDomainFlags(iommufd.seam, iommufd.fileDescriptor.rawValue, pageTable: ioas.id.rawValue, flags: 4,
                                                            fileID: #fileID, line: #line)
            let plain = try ioas.selftestAttachMockDomain()
            defer {
                try? iommufd.destroy(SelftestID(rawValue: capable.selftestID))
                try? iommufd.destroy(plain.selftestID)
            }
            let capableID = IOMMUObjectID<DeviceObject>(rawValue: capable.deviceID)
            let space = PASIDSpace(iommufd: iommufd)
            try space.register(capableID)
            var lines = ["widths: \(space.pasidWidth(of: capableID) ?? -1)"]
            lines.append("device scope: \(try space.allocate(.device(capableID)))")
            lines.append("all RIDs: \(try space.allocate(.allRIDs))")
            do {
                try space.register(plain.deviceID)
                _ = try space.allocate(.device(plain.deviceID))
                lines.append("plain device: allocated")
            } catch let error as PASIDSpaceError {
                lines.append("plain device: \(error.reason)")
            }
            return lines
        }

        @Test("widths come from this kernel's GET_HW_INFO (20 bits for MOCK_FLAGS_DEVICE_PASID); a plain device is refused by the space itself, as it would be tooNarrow for the all-RIDs PASID; the mock agrees")
        func spaceAgrees() throws {
            let kernelLines = try Self.lines(system: LinuxSystem())
            #expect(kernelLines.first == "widths: 20", "\(kernelLines)")
            #expect(kernelLines.last?.hasPrefix("plain device: tooNarrow") == true, "\(kernelLines)")
            let mockLines = try Self.lines(system: MockKernel())
            #expect(mockLines == kernelLines, "mock: \(mockLines)")
        }
    }
}

extension HardwareSuite {
    /// PASID attach on edu behind QEMU 7.2's intel-iommu, which has no PASID support.
    @Suite("Hardware: PASIDs on edu, kernel and typed API", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason))
    struct EduPASIDTests {
        @Test("the kernel accepts a PASID attach for edu (no PASID capability, max_pasids 0) and ignores it; the typed lease refuses it with EOPNOTSUPP before any call")
        func silentAttachIsRefused() throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            guard case .iommufd(let ioas) = owned.context.addressSpace, let device = owned.device.deviceID else { throw HardwareInfoTests.NotThroughIOMMUFD() }
            let hwpt = try ioas.allocateHWPT(for: device, flags: [.pasid])
            _ = try owned.device.attach(to: hwpt)
            _ = try VFIODeviceIOCTL.attach(owned.device.seam, owned.device.fileDescriptor.rawValue, pageTable: hwpt.id.rawValue, pasid: 1, fileID: #fileID, line: #line)
            try VFIODeviceIOCTL.detach(owned.device.seam, owned.device.fileDescriptor.rawValue, pasid: 1, fileID: #fileID, line: #line)
            do {
                _ = try owned.device.attachPASID(PASID(rawValue: 1)!, to: hwpt)
                Issue.record("the typed API must refuse a device without PASIDs")
            } catch {
                #expect(error.errno == .notSupported)
            }
            _ = try owned.device.attach(to: ioas)
            try hwpt.destroy()
        }
    }
}
