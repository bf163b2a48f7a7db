import CIOMMUFD
import IOMMUFD
import MockKernel
import Scenarios
import SystemPackage
import Testing
import VFIO

/// The mock side of the VM lane's shared-IOAS comparison (HardwareTests): what the
/// kernel answered there, line by line, is what the mock must answer here.
@Suite("mock devices and a VFIO function on one IOAS, on MockKernel")
struct SharedIOASTests {
    @Test("two mock devices share an automatic HWPT; a function of another IOMMU driver gets its own; the ranges follow each device's aperture (as 7.3 answered in the VM)")
    func sharedIOAS() throws {
        let lines = try SharedIOASProbe.lines(edu, system: pciMachine())
        #expect(lines == [
            "empty: 0x0-0xffffffffffffffff",
            "two mock devices share one HWPT: true",
            "two mock devices: 0x1000000-0x7fffffff",
            "the function shares the mock devices' HWPT: false",
            "mock devices and the function: 0x1000000-0x7fffffff",
            "the function gone: 0x1000000-0x7fffffff",
            "one mock device: 0x1000000-0x7fffffff",
            "none: 0x0-0xffffffffffffffff",
        ])
    }
}

@Suite("a BAR mapping keeps the device file, on MockKernel")
struct BARMappingTests {
    @Test("closing the cdev while BAR0 is mapped leaves the device attached (the IOAS busy) until the munmap, as 7.3 answered in the VM")
    func mappingKeepsTheFile() throws {
        let kernel = pciMachine()
        let lines = try BARMappingProbe.lines(edu, system: kernel)
        #expect(lines == ["destroy the IOAS with the descriptor closed and BAR0 still mapped: EBUSY", "destroy the IOAS after the munmap: ok"])
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}

@Suite("iommufd and type1 draw on separate memlock budgets, on MockKernel")
struct MemlockBudgetTests {
    @Test("64 KiB through iommufd fills the per-user budget, 64 KiB through type1 still fits (mm->locked_vm), VmPin and VmLck show each, as 7.3 answered in the VM")
    func separateBudgets() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        configuration.memlockMaximum = nil
        let kernel = MockKernel(configuration: configuration)
        let lines = try MemlockBudgetProbe.lines(edu, system: kernel)
        #expect(lines == MemlockBudgetProbe.linuxAnswer, "\(lines)")
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}

@Suite("e1000e's option ROM on MockKernel")
struct OptionROMTests {
    @Test("reading the ROM region, whose contents the model does not have, is refused loudly: ENOSYS, recorded; writing it is EINVAL, as in the kernel")
    func romReadIsRefused() throws {
        let kernel = pciMachine()
        let nic = try VFIOPCIDevice(e1000e, path: .only(.iommufdCdev), system: kernel, environment: [:])
        var byte: UInt8 = 0
        let rom = try nic.device.region(VFIO_PCI_ROM_REGION_INDEX)
        #expect(throws: Errno.noFunction) {
            _ = try withUnsafeMutableBytes(of: &byte) { try kernel.pread(nic.device.fileDescriptor.rawValue, into: $0, offset: Int64(rom.offset)) }
        }
        #expect(kernel.unmodelledCalls == [.pread])
        #expect(throws: Errno.invalidArgument, "the ROM is read-only: a write is EINVAL (vfio_pci_core.c:1657-1659)") {
            _ = try withUnsafeBytes(of: &byte) { try kernel.pwrite(nic.device.fileDescriptor.rawValue, from: $0, offset: Int64(rom.offset)) }
        }
        #expect(kernel.unmodelledCalls == [.pread], "a write is modelled")
    }
}

@Suite("VFIO device commands MockKernel does not model")
struct UnmodelledDeviceCommandTests {
    @Test("IOEVENTFD and DEVICE_FEATURE, which vfio-pci implements, are refused loudly (ENOSYS, recorded), not ENOTTY; the graphics commands vfio-pci lacks stay ENOTTY")
    func refusedLoudly() throws {
        let kernel = pciMachine()
        let nic = try VFIOPCIDevice(e1000e, path: .only(.iommufdCdev), system: kernel, environment: [:])
        let fd = nic.device.fileDescriptor.rawValue
        var ioeventfd = vfio_device_ioeventfd()
        ioeventfd.argsz = UInt32(MemoryLayout<vfio_device_ioeventfd>.size)
        #expect(throws: Errno.noFunction) { _ = try kernel.ioctl(fd, VFIO_DEVICE_IOEVENTFD, &ioeventfd) }
        var feature = vfio_device_feature()
        feature.argsz = UInt32(MemoryLayout<vfio_device_feature>.size)
        #expect(throws: Errno.noFunction) { _ = try kernel.ioctl(fd, VFIO_DEVICE_FEATURE, &feature) }
        #expect(kernel.unmodelledCalls == [.vfioDeviceIOEventFD, .vfioDeviceFeature])
        var plane = vfio_device_feature()
        #expect(throws: Errno.inappropriateIOCTLForDevice, "vfio_pci_core_ioctl's default") {
            _ = try kernel.ioctl(fd, VFIO_DEVICE_QUERY_GFX_PLANE, &plane)
        }
    }
}

@Suite("reserved regions belong to the device, not to the page table")
struct DeviceReservedRegionTests {
    /// The IOAS's usable ranges as `start-last` in hex.
    static func ranges(_ ioas: IOAS) throws -> String {
        try ioas.iovaRanges().ranges.map { "0x\(String($0.start.rawValue, radix: 16))-0x\(String($0.last.rawValue, radix: 16))" }.joined(separator: " ")
    }

    @Test("nvme with a region of its own shares edu's automatic HWPT; when nvme detaches its region leaves the IOAS though the HWPT stays (iommufd_hw_pagetable_detach, device.c:786-787)")
    func regionsLeaveWithTheDevice() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        var nvmeFunction = MockKernel.PCIDevice.nvme()
        nvmeFunction.reservedRegions.append(0x8000_0000...0x800f_ffff)
        configuration.addPCIDevice(nvmeFunction)
        let kernel = MockKernel(configuration: configuration)
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
            let first = try context.claim(edu)
            let second = try context.claim(nvme)
            #expect(first.device.attachedPageTable == second.device.attachedPageTable, "one driver, one automatic HWPT")
            #expect(try Self.ranges(ioas) == "0x0-0x7fffffff 0x80100000-0xfedfffff 0xfef00000-0x7fffffffff")
            try second.device.detach()
            #expect(try Self.ranges(ioas) == "0x0-0xfedfffff 0xfef00000-0x7fffffffff", "nvme's region left with nvme; edu's window stays")
            #expect(first.device.attachedPageTable != nil)
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}

@Suite("dirty tracking on MockKernel's selftest IOMMU")
struct DirtyTrackingMockTests {
    @Test("a HWPT without the flag refuses tracking; marked mappings read back dirty with their range, kept or cleared; marking with tracking off is EINVAL: what 7.3 answered in the VM, line by line")
    func asTheKernelAnswered() throws {
        try expectMockAnswersAsLinux(DirtyTrackingProbe.lines, linuxAnswer: DirtyTrackingProbe.linuxAnswer)
    }
}
