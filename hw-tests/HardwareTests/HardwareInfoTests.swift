import Edu
import CIOMMUFD
import Glibc
@_spi(Selftest) import IOMMUFD
import MockKernel
import Scenarios
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// `IOMMU_GET_HW_INFO` for a function behind QEMU's intel-iommu, on this kernel and on
    /// MockKernel's model of the same machine: the two answers must be the same.
    @Suite("Hardware: GET_HW_INFO for a VFIO-bound function, kernel and mock", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason))
    struct HardwareInfoTests {
        /// What GET_HW_INFO answers for a device, with a 64-byte buffer filled with 0xff first.
        struct Answer: Equatable, CustomStringConvertible {
            var type: UInt32, length: UInt32, capabilities: UInt64, pasidWidth: UInt8
            var flags: UInt32, capabilityRegister: UInt64, extendedCapabilityRegister: UInt64, tailZeroed: Bool
            var description: String {
                "type \(type) len \(length) caps 0x\(String(capabilities, radix: 16)) pasid \(pasidWidth) flags 0x\(String(flags, radix: 16)) "
                    + "cap 0x\(String(capabilityRegister, radix: 16)) ecap 0x\(String(extendedCapabilityRegister, radix: 16)) tail \(tailZeroed ? "zeroed" : "kept")"
            }

            init(_ owned: VFIOPCIDevice) throws {
                guard case .iommufd(let ioas) = owned.context.addressSpace, let device = owned.device.deviceID else {
                    throw HardwareInfoTests.NotThroughIOMMUFD()
                }
                var bytes = [UInt8](repeating: 0xff, count: 64)
                let answer = try bytes.withUnsafeMutableBytes { (buffer) throws(IOMMUError) in
                    try IOMMUFDIOCTL.getHardwareInfo(ioas.iommufd.seam, ioas.iommufd.fileDescriptor.rawValue, device: device.rawValue, flags: 0,
                                                     dataType: 0, into: buffer, fileID: #fileID, line: #line)
                }
                let vtd = bytes.withUnsafeBytes { $0.loadUnaligned(as: iommu_hw_info_vtd.self) }
                type = answer.dataType
                length = answer.dataLength
                capabilities = answer.capabilities
                pasidWidth = answer.maxPASIDLog2
                flags = vtd.flags
                capabilityRegister = vtd.cap_reg
                extendedCapabilityRegister = vtd.ecap_reg
                tailZeroed = bytes[Int(min(answer.dataLength, 64))...].allSatisfy { $0 == 0 }
            }
        }

        struct NotThroughIOMMUFD: Error {}

        @Test("edu through the cdev: VT-d data with the errata flag and QEMU's registers, no ATS, no PASID; MockKernel answers the same")
        func vtdAnswerMatchesTheMock() throws {
            let address = try #require(Hardware.eduDevice)
            let kernelAnswer = try Answer(try VFIOPCIDevice(address, path: .only(.iommufdCdev)))
            #expect(kernelAnswer.type == IOMMU_HW_INFO_TYPE_INTEL_VTD)
            #expect(kernelAnswer.length == UInt32(MemoryLayout<iommu_hw_info_vtd>.size))
            #expect(kernelAnswer.flags == IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, "intel_iommu_hw_info always sets the errata flag")
            #expect(kernelAnswer.tailZeroed)

            let mockAnswer = try Answer(try VFIOPCIDevice(address, path: .only(.iommufdCdev), system: mockMachine(with: .edu(address: address.description))))
            #expect(mockAnswer == kernelAnswer, "kernel: \(kernelAnswer)\nmock:   \(mockAnswer)")
        }

        /// The typed answer for a claimed function: its hardware info and its HWPT formats.
        static func typedInfo(_ owned: VFIOPCIDevice) throws -> (HardwareInfo, PageTableFormats) {
            guard case .iommufd(let ioas) = owned.context.addressSpace, let device = owned.device.deviceID else { throw NotThroughIOMMUFD() }
            let info = try ioas.iommufd.hardwareInfo(of: device)
            return (info, PageTableFormats(info))
        }

        @Test("edu's typed hardware info: VT-d decoded (MGAW and SAGAW 39, no scalable mode), paging HWPTs with the PASID flag only; equal on the kernel and the mock")
        func typedVTdMatchesTheMock() throws {
            let address = try #require(Hardware.eduDevice)
            let (kernelInfo, kernelFormats) = try Self.typedInfo(try VFIOPCIDevice(address, path: .only(.iommufdCdev)))
            guard case .intelVTd(let vtd) = kernelInfo.vendor else { Issue.record("not VT-d: \(kernelInfo)"); return }
            #expect(vtd.maximumGuestAddressWidth == 39 && vtd.supportedAddressWidths == [39] && !vtd.scalableMode)
            #expect(kernelFormats.pagingFlags == [.pasid] && kernelFormats.nestedFormats.isEmpty && !kernelFormats.takesPASIDs)
            let (mockInfo, mockFormats) = try Self.typedInfo(try VFIOPCIDevice(address, path: .only(.iommufdCdev), system: mockMachine(with: .edu(address: address.description))))
            #expect(mockInfo == kernelInfo, "kernel: \(kernelInfo)\nmock:   \(mockInfo)")
            #expect(mockFormats == kernelFormats)
        }

        @Test("edu's RID moved between two HWPTs it allocated, without a detach: edu's DMA round trip works before, on each, and after (the mappings live in the IOAS both HWPTs map); the HWPT in use is EBUSY")
        func replaceBetweenHWPTsWithDMA() throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(.iommufdCdev))
            guard case .iommufd(let ioas) = owned.context.addressSpace, let device = owned.device.deviceID else { throw NotThroughIOMMUFD() }
            try owned.device.setBusMaster(true)
            let edu = try EduDevice(owned.device)
            let buffer = Hardware.pinnableBuffer(byteCount: 4096)
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            func roundTrip(_ seed: UInt8) throws -> Bool { try edu.roundTrip(buffer, at: mapping.iova, seed: seed) }
            #expect(try roundTrip(1), "on the automatic HWPT")
            let first = try ioas.allocateHWPT(for: device)
            let second = try ioas.allocateHWPT(for: device, flags: [.pasid])
            #expect(try owned.device.attach(to: first.id) == first.id)
            #expect(try roundTrip(2), "on the first HWPT")
            #expect(throws: IOMMUError.self) { try first.destroy() }
            #expect(try owned.device.attach(to: second.id) == second.id)
            #expect(try roundTrip(3), "on the second HWPT, replaced without a detach")
            try first.destroy()
            _ = try owned.device.attach(to: ioas)
            #expect(try roundTrip(4), "back on an automatic HWPT")
            try second.destroy()
            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
        }

        @Test("the selftest mock device's typed hardware info: 0xfeedbeef, test_reg 0xdeadbeef, dirty tracking; the same on the mock",
              .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
        func typedSelftestMatchesTheMock() throws {
            func answer(_ system: any SystemInterface) throws -> HardwareInfo {
                let iommufd = try IOMMUFD(system: system)
                let ioas = try iommufd.allocateIOAS()
                let device = try ioas.selftestAttachMockDomain()
                defer { try? iommufd.destroy(device.selftestID) }
                return try iommufd.hardwareInfo(of: device.deviceID)
            }
            let kernelInfo = try answer(LinuxSystem())
            #expect(kernelInfo.kind == .selftest && kernelInfo.vendor == .selftest(testRegister: 0xdead_beef))
            #expect(PageTableFormats(kernelInfo).pagingFlags == [.nestParent, .dirtyTracking, .pasid])
            #expect(try answer(MockKernel()) == kernelInfo)
        }
    }
}

extension HardwareSuite {
    /// A VFIO device cdev opened but not bound, on this kernel and on MockKernel.
    @Suite("Hardware: an unbound device cdev, kernel and mock", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason))
    struct UnboundCdevTests {
        @Test("before VFIO_DEVICE_BIND_IOMMUFD every request, known or not, is EINVAL (vfio_main.c:1377-1382); the mock agrees")
        func unboundCdevRefusesEverything() throws {
            let address = try #require(Hardware.eduDevice)
            let kernelAnswers = try UnboundCdevProbe.answers(address, system: LinuxSystem())
            let mockAnswers = try UnboundCdevProbe.answers(address, system: mockMachine(with: .edu(address: address.description)))
            #expect(kernelAnswers == UnboundCdevProbe.expected, "kernel: \(kernelAnswers)")
            #expect(mockAnswers == kernelAnswers, "mock: \(mockAnswers)")
        }
    }
}

extension HardwareSuite {
    /// edu, e1000e and nvme as VFIO describes them, on this kernel and on MockKernel's
    /// presets of the same devices.
    @Suite("Hardware: device, region and interrupt info, kernel and mock",
           .enabled(if: Hardware.eduDevice != nil && Hardware.e1000eDevice != nil && Hardware.nvmeDevice != nil, Hardware.qemuDevicesReason))
    struct DeviceDescriptionTests {
        @Test("every line of the device's description (info, regions, interrupt indexes) is the same on the kernel and on the mock",
              arguments: ["edu", "e1000e", "nvme"])
        func descriptionsAgree(_ name: String) throws {
            let address: PCIAddress, preset: MockKernel.PCIDevice
            switch name {
            case "edu": address = try #require(Hardware.eduDevice); preset = .edu(address: address.description)
            case "e1000e": address = try #require(Hardware.e1000eDevice); preset = .e1000e(address: address.description)
            default: address = try #require(Hardware.nvmeDevice); preset = .nvme(address: address.description)
            }
            let compared = try kernelAndMock(mockMachine(with: preset)) { try DeviceDescriptionProbe.lines(address, system: $0) }
            #expect(compared.differences.isEmpty, Comment(rawValue: "\(name):\n" + compared.differences.joined(separator: "\n")))
        }
    }
}

extension HardwareSuite {
    /// `/proc/self/status` as iommufd changes it, on this kernel and on MockKernel.
    @Suite("Hardware: VmPin and VmLck follow iommufd's pins, kernel and mock", .enabled(if: Hardware.hasSelftest, Hardware.selftestReason), .serialized)
    struct ProcessStatusTests {
        /// The `VmPin` and `VmLck` lines of `system`'s `/proc/self/status`, in kB.
        static func pinnedAndLocked(_ system: any SystemInterface) throws -> (pinned: Int, locked: Int) {
            let text = String(decoding: try system.readFile("/proc/self/status"), as: UTF8.self)
            func field(_ name: String) -> Int {
                text.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                    .flatMap { Int($0.dropFirst(name.count + 1).filter(\.isNumber)) } ?? -1
            }
            return (field("VmPin"), field("VmLck"))
        }

        /// Maps 16 pages on a mock domain and reports how VmPin and VmLck moved, then moves back.
        static func deltas(_ system: any SystemInterface) throws -> [Int] {
            let iommufd = try IOMMUFD(system: system)
            let ioas = try iommufd.allocateIOAS()
            let device = try ioas.selftestAttachMockDomain()
            let length = 16 * 4096
            let memory = try system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            defer { try? system.munmap(memory, length: length) }
            let before = try pinnedAndLocked(system)
            let mapping = try ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: UInt64(length))
            let during = try pinnedAndLocked(system)
            try ioas.unmap(mapping)
            let after = try pinnedAndLocked(system)
            try iommufd.destroy(device.selftestID)
            return [during.pinned - before.pinned, during.locked - before.locked, after.pinned - before.pinned]
        }

        @Test("16 pages mapped on a mock domain: VmPin +64 kB, VmLck unchanged, back after the unmap, on both")
        func pinsShowInVmPin() throws {
            let kernel = try Self.deltas(LinuxSystem())
            let mock = try Self.deltas(MockKernel())
            #expect(kernel == [64, 0, 0])
            #expect(mock == kernel)
        }
    }
}

extension HardwareSuite {
    /// Devices of two IOMMU drivers on one IOAS, on this kernel and on MockKernel.
    @Suite("Hardware: mock devices and a VFIO function on one IOAS, kernel and mock",
           .enabled(if: Hardware.eduDevice != nil && Hardware.hasSelftest, Hardware.eduReason))
    struct SharedIOASTests {
        @Test("HWPT sharing and IOVA ranges step by step are the same on the kernel and on the mock")
        func sharedIOASAgrees() throws {
            let address = try #require(Hardware.eduDevice)
            let compared = try kernelAndMock(mockMachine(with: .edu(address: address.description))) { try SharedIOASProbe.lines(address, system: $0) }
            #expect(compared.differences.isEmpty,
                    Comment(rawValue: "kernel:\n" + compared.kernel.joined(separator: "\n") + "\ndifferences:\n" + compared.differences.joined(separator: "\n")))
        }
    }
}

extension HardwareSuite {
    /// A closed device descriptor whose BAR is still mapped, on this kernel and on MockKernel.
    @Suite("Hardware: a BAR mapping keeps the device file, kernel and mock", .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason))
    struct BARMappingTests {
        @Test("closing the cdev while BAR0 is mapped leaves the device attached until the munmap, on both")
        func mappingKeepsTheFile() throws {
            let address = try #require(Hardware.eduDevice)
            let compared = try kernelAndMock(mockMachine(with: .edu(address: address.description))) { try BARMappingProbe.lines(address, system: $0) }
            #expect(compared.kernel == ["destroy the IOAS with the descriptor closed and BAR0 still mapped: EBUSY", "destroy the IOAS after the munmap: ok"])
            #expect(compared.differences.isEmpty, "\(compared.differences)")
        }
    }
}

extension HardwareSuite {
    /// iommufd's and type1's pins against RLIMIT_MEMLOCK, on this kernel and on MockKernel.
    @Suite("Hardware: iommufd and type1 draw on separate memlock budgets, kernel and mock",
           .enabled(if: Hardware.eduDevice != nil && Hardware.hasSelftest && Hardware.hasLegacyContainer, Hardware.eduReason), .serialized)
    struct MemlockBudgetTests {
        @Test("64 KiB through iommufd fills its budget; 64 KiB through type1 still fits; VmPin and VmLck show each; the same on both")
        func budgetsAgree() throws {
            let address = try #require(Hardware.eduDevice)
            let compared = try kernelAndMock(mockMachine(with: .edu(address: address.description)) { $0.memlockMaximum = nil }) {
                try MemlockBudgetProbe.lines(address, system: $0)
            }
            let (kernelLines, mockLines) = (compared.kernel, compared.mock)
            #expect(kernelLines == MemlockBudgetProbe.linuxAnswer, "\(kernelLines)")
            #expect(mockLines == kernelLines, Comment(rawValue: "kernel:\n" + kernelLines.joined(separator: "\n") + "\nmock:\n" + mockLines.joined(separator: "\n")))
        }
    }
}

/// The mock machine a kernel-versus-mock probe runs on: the same function at the same
/// address, from MockKernel's preset of it.
func mockMachine(with preset: MockKernel.PCIDevice, _ change: (inout MockKernel.Configuration) -> Void = { _ in }) -> MockKernel {
    var configuration = MockKernel.Configuration()
    configuration.addPCIDevice(preset)
    change(&configuration)
    return MockKernel(configuration: configuration)
}

/// A probe on this kernel gives what Linux 7.3 answered when the probe was written, and
/// on MockKernel the same lines.
func expectKernelAndMockAgree(_ probe: (any SystemInterface) throws -> [String], linuxAnswer: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
    let kernelLines = try probe(LinuxSystem())
    #expect(kernelLines == linuxAnswer, "kernel: \(kernelLines)", sourceLocation: sourceLocation)
    let mockLines = try probe(MockKernel())
    #expect(mockLines == kernelLines, "mock: \(mockLines)", sourceLocation: sourceLocation)
}

/// The probe's lines on this kernel and on `mock`, and the lines that differ, one pair each.
func kernelAndMock<Line: Equatable>(_ mock: MockKernel, _ probe: (any SystemInterface) throws -> [Line]) throws
    -> (kernel: [Line], mock: [Line], differences: [String]) {
    let kernelLines = try probe(LinuxSystem())
    let mockLines = try probe(mock)
    var differences = zip(kernelLines, mockLines).filter { $0 != $1 }.map { "kernel: \($0)\n  mock: \($1)" }
    if kernelLines.count != mockLines.count { differences.append("kernel: \(kernelLines.count) lines, mock: \(mockLines.count)") }
    return (kernelLines, mockLines, differences)
}

extension HardwareSuite {
    /// Dirty tracking on the kernel selftest's mock IOMMU, on this kernel and on MockKernel.
    @Suite("Hardware: dirty tracking on the selftest IOMMU, kernel and mock", .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
    struct DirtyTrackingTests {
        @Test("a HWPT without the flag refuses tracking; marked mappings read back dirty with their range, kept or cleared; marking with tracking off is EINVAL; the mock agrees line by line")
        func dirtyTrackingAgrees() throws {
            try expectKernelAndMockAgree(DirtyTrackingProbe.lines, linuxAnswer: DirtyTrackingProbe.linuxAnswer)
        }
    }
}


extension HardwareSuite {
    /// Nested HWPTs and their invalidation on the kernel selftest's mock IOMMU, on this kernel and on MockKernel.
    @Suite("Hardware: nested HWPTs on the selftest IOMMU, kernel and mock", .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
    struct NestedHWPTTests {
        @Test("alloc_hwpt_nested's ground through the typed API: parents, selftest data and its IOTLB, typed invalidation with the handled count, EBUSY references, replace across nested HWPTs; the mock agrees line by line")
        func nestedHWPTsAgree() throws {
            try expectKernelAndMockAgree(NestedHWPTProbe.lines, linuxAnswer: NestedHWPTProbe.linuxAnswer)
        }
    }
}

extension HardwareSuite {
    /// A vIOMMU on the kernel selftest's mock IOMMU, on this kernel and on MockKernel.
    @Suite("Hardware: a vIOMMU on the selftest IOMMU, kernel and mock", .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
    struct VIOMMUTests {
        @Test("the iommufd_viommu fixture's ground without vDEVICEs through the typed API: parent rules, data echoed with its mmap region, a nested HWPT on it, invalidation at both levels, EBUSY references; the mock agrees line by line")
        func viommuAgrees() throws {
            try expectKernelAndMockAgree(VIOMMUProbe.lines, linuxAnswer: VIOMMUProbe.linuxAnswer)
        }
    }
}
