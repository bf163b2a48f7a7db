import Edu
import Foundation
import IOMMUFD
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// QEMU's edu device behind intel-iommu, owned through its VFIO cdev and an iommufd:
    /// real DMA through a real IOMMU.
    @Suite("Hardware: edu DMA through iommufd", 
           .enabled(if: Hardware.eduDevice != nil, Hardware.eduReason), .serialized)
    struct EduDMATests {
        /// Two page-aligned host buffers of one page each, owned by the test's leak check.
        struct HostBuffers {
            let source = Hardware.pinnableBuffer(byteCount: 4096)
            let destination = Hardware.pinnableBuffer(byteCount: 4096)
        }

        /// The paths this kernel offers: iommufd always here; legacy when CONFIG_VFIO_CONTAINER is set.
        static let paths: [VFIODevice.Path] = Hardware.hasLegacyContainer ? [.iommufdCdev, .legacyGroup] : [.iommufdCdev]

        @Test("edu copies host memory in and back out and every byte matches, through the cdev and the legacy type1 path",
              arguments: paths)
        func roundTrip(path: VFIODevice.Path) throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(path))
            let device = owned.device
            #expect(device.openedThrough == path)
            if path == .iommufdCdev {
                #expect(try #require(device.deviceID).rawValue != 0)
                #expect(try #require(device.attachedPageTable).rawValue != 0)
            }
            #expect(try device.info().isPCI)
            #expect(try device.readConfiguration(UInt16.self, at: PCIConfiguration.vendorID) == 0x1234)
            #expect(try device.readConfiguration(UInt16.self, at: PCIConfiguration.deviceID) == 0x11e8)
            try device.setBusMaster(true)
            #expect(try device.readConfiguration(UInt16.self, at: PCIConfiguration.command) & PCIConfiguration.commandBusMaster != 0)

            let edu = try EduDevice(device)
            #expect(edu.identification & 0xff == 0xed)
            #expect(edu.livenessCheck(0x1234_5678) == ~UInt32(0x1234_5678))
            #expect(try edu.factorial(of: 5) == 120)
            #expect(try edu.factorial(of: 13) == 1_932_053_504, "13! modulo 2^32")

            let buffers = HostBuffers()
            let count = Int(EduDevice.maximumTransfer)
            for index in 0..<4096 { buffers.source[index] = UInt8(truncatingIfNeeded: index &* 7 &+ 3) }
            buffers.destination.initializeMemory(as: UInt8.self, repeating: 0)
            let sourceMapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffers.source), at: IOVA(0x10_0000), access: .readable)
            let destinationMapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffers.destination), at: IOVA(0x20_0000))
            #expect(destinationMapping.iova.rawValue < EduDevice.addressLimit)

            try edu.copyToDevice(from: sourceMapping.iova, count: UInt64(count))
            try edu.copyToHost(to: destinationMapping.iova, count: UInt64(count))
            var mismatches = 0
            for index in 0..<count where buffers.destination[index] != buffers.source[index] { mismatches += 1 }
            #expect(mismatches == 0, "\(mismatches) of \(count) bytes differ after the round trip (\(path))")
            let untouched = (count..<4096).allSatisfy { buffers.destination[$0] == 0 }
            #expect(untouched, "bytes past the transfer were written")

            // Quiesce, then unmap, then free: the order a driver's teardown must follow.
            try device.setBusMaster(false)
            try owned.addressSpace.unmap(sourceMapping)
            try owned.addressSpace.unmap(destinationMapping)
        }

        @Test("edu raises an MSI and it arrives on the eventfd, through either path", arguments: paths)
        func messageSignalledInterrupt(path: VFIODevice.Path) throws {
            let address = try #require(Hardware.eduDevice)
            let owned = try VFIOPCIDevice(address, path: .only(path))
            let info = try owned.device.interruptInfo(.msi)
            #expect(info.count >= 1 && info.signalsEventFD)
            try owned.device.setBusMaster(true)
            let vectors = try owned.device.enableInterrupts(preferring: [.msix, .msi, .intx])
            #expect(vectors.kind == .msi, "edu has MSI and no MSI-X")
            let edu = try EduDevice(owned.device)
            #expect(try vectors.takePending() == 0)
            edu.raiseInterrupt(0x5a)
            let arrived = try vectors.wait(timeout: 5)
            #expect(arrived == 1, "\(arrived) interrupts arrived")
            #expect(edu.interruptStatus == 0x5a)
            edu.acknowledgeInterrupt(0x5a)
            #expect(edu.interruptStatus == 0)
            try owned.device.disableInterrupts(.msi)
            try owned.device.setBusMaster(false)
        }

        @Test("a DMA aimed at an unmapped IOVA is blocked by the IOMMU and touches no memory")
        func unmappedIOVA() throws {
            let address = try #require(Hardware.eduDevice)
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let device = try VFIODevice(address)
            try device.bind(to: iommufd)
            try device.attach(to: ioas)
            try device.setBusMaster(true)
            let edu = try EduDevice(device)

            let buffers = HostBuffers()
            for index in 0..<4096 { buffers.source[index] = 0xa5 }
            buffers.destination.initializeMemory(as: UInt8.self, repeating: 0x5a)
            let sourceMapping = try ioas.map(UnsafeRawBufferPointer(buffers.source), at: IOVA(0x10_0000))
            try edu.copyToDevice(from: sourceMapping.iova, count: 2048)
            // The destination was mapped once and is unmapped now: the IOVA is stale.
            let destinationMapping = try ioas.map(UnsafeRawBufferPointer(buffers.destination), at: IOVA(0x30_0000))
            try ioas.unmap(destinationMapping)
            try edu.copyToHost(to: destinationMapping.iova, count: 2048)
            #expect(buffers.destination.allSatisfy { $0 == 0x5a }, "a DMA to an unmapped IOVA reached memory")
            try device.setBusMaster(false)
            try ioas.unmap(sourceMapping)
        }

        @Test("IOVA ranges after attach follow intel-iommu: its address width, minus the reserved regions")
        func rangesAfterAttach() throws {
            let address = try #require(Hardware.eduDevice)
            let system = LinuxSystem()
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let device = try VFIODevice(address)
            try device.bind(to: iommufd)
            try device.attach(to: ioas)
            let ranges = try ioas.iovaRanges().ranges
            #expect(!ranges.isEmpty)

            // The top of the space is 2^width - 1 for the domain's address width (39 or 48 bits).
            let top = try #require(ranges.last).last.rawValue
            #expect([39, 48, 57].map { (UInt64(1) << $0) - 1 }.contains(top), "top of IOVA space \(String(top, radix: 16))")

            // Every reserved region of the device's group lies outside every range,
            // the MSI window at 0xfee00000 among them.
            let group = try system.readLink(address.sysfsPath + "/iommu_group").split(separator: "/").last.map(String.init)
            let regionsText = String(decoding: try system.readFile("/sys/kernel/iommu_groups/\(try #require(group))/reserved_regions"), as: UTF8.self)
            var sawMSI = false
            for line in regionsText.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 3, let start = UInt64(fields[0].dropFirst(2), radix: 16),
                      let end = UInt64(fields[1].dropFirst(2), radix: 16) else { continue }
                if fields[2] == "msi" && start == 0xfee0_0000 { sawMSI = true }
                for range in ranges {
                    #expect(end < range.start.rawValue || start > range.last.rawValue,
                            "reserved \(line) overlaps \(range)")
                }
            }
            #expect(sawMSI, "no MSI window in \(regionsText)")
        }

        @Test("a second bind on the same device is refused (EINVAL)")
        func bindTwice() throws {
            let address = try #require(Hardware.eduDevice)
            let iommufd = try IOMMUFD()
            let device = try VFIODevice(address)
            try device.bind(to: iommufd)
            do {
                try device.bind(to: iommufd)
                Issue.record("binding twice succeeded")
            } catch {
                #expect(error.errno == .invalidArgument && error.operation == .vfioDeviceBindIOMMUFD)
            }
        }
    }
}

extension HardwareSuite.EduDMATests {
    @Test("a buffer the process unmaps while it is mapped for the device: the kernel keeps its pinned pages, edu still reads what was there, and the pins go with the IOMMU unmap (the mock's rule: KernelAnswersTests)",
          arguments: paths)
    func pinnedPagesOutliveMunmap(path: VFIODevice.Path) throws {
        let address = try #require(Hardware.eduDevice)
        let owned = try VFIOPCIDevice(address, path: .only(path))
        try owned.device.setBusMaster(true)
        let edu = try EduDevice(owned.device)
        let system = LinuxSystem()
        let source = try system.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        for index in 0..<4096 { source.storeBytes(of: UInt8(truncatingIfNeeded: index &* 13 &+ 5), toByteOffset: index, as: UInt8.self) }
        let sourceMapping = try owned.addressSpace.map(UnsafeRawBufferPointer(start: source, count: 4096), at: IOVA(0x10_0000), access: .readable)
        try system.munmap(source, length: 4096)

        let destination = Hardware.pinnableBuffer(byteCount: 4096)
        destination.initializeMemory(as: UInt8.self, repeating: 0)
        let destinationMapping = try owned.addressSpace.map(UnsafeRawBufferPointer(destination), at: IOVA(0x20_0000))
        let count = Int(EduDevice.maximumTransfer)
        try edu.copyToDevice(from: sourceMapping.iova, count: UInt64(count))
        try edu.copyToHost(to: destinationMapping.iova, count: UInt64(count))
        let differing = (0..<count).filter { destination[$0] != UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }.count
        #expect(differing == 0, "\(differing) bytes differ: the pinned pages were not what the process had written (\(path))")

        try owned.device.setBusMaster(false)
        try owned.addressSpace.unmap(sourceMapping)
        try owned.addressSpace.unmap(destinationMapping)
    }
}
