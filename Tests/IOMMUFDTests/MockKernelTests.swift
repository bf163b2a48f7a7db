@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// The model's own services: trace, fake DMA, files, descriptors.
@Suite("MockKernel")
struct MockKernelTests {
    @Test("the trace records the exact ioctl sequence of a map round trip")
    func traceOfRoundTrip() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            world.kernel.clearTrace()
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: page)
            try world.ioas.unmap(mapping)
            #expect(world.kernel.trace.map(\.name) == ["IOMMU_IOAS_MAP", "IOMMU_IOAS_UNMAP"])
            #expect(world.kernel.trace.allSatisfy { $0.result == nil })
            try world.release(buffer, pages: 1)
        }
    }

    @Test("fake DMA reaches the user memory behind a mapping, both directions")
    func fakeDMA() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 2)
            buffer.storeBytes(of: 0xfeedface, as: UInt32.self)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 2 * page)
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue, length: 4) == [0xce, 0xfa, 0xed, 0xfe])
            #expect(world.kernel.deviceWrite(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue + page, bytes: [9, 8, 7]))
            #expect((buffer + Int(page)).load(as: UInt8.self) == 9)
            // Past the mapping the device faults.
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue + 2 * page, length: 1) == nil)
            try world.ioas.unmap(mapping)
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue, length: 4) == nil)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 2)
        }
    }

    @Test("fake DMA honours the mapping's access and needs a device domain")
    func fakeDMAAccess() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 1)
            let readOnly = try world.ioas.map(userAddress: world.address(buffer), length: page, at: IOVA(1 << 24), access: .readable)
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: readOnly.iova.rawValue, length: 1) == nil)
            let device = try world.ioas.selftestAttachMockDomain()
            _ = device
            try world.ioas.unmap(readOnly)
            let again = try world.ioas.map(userAddress: world.address(buffer), length: page, access: .readable)
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: again.iova.rawValue, length: 1) != nil)
            #expect(!world.kernel.deviceWrite(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: again.iova.rawValue, bytes: [1]))
            try world.ioas.unmap(again)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("MD_CHECK_MAP confirms where an IOVA points, as the kernel selftest does")
    func checkMap() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 2)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 2 * page)
            var command = checkMapCommand(hwpt: device.hwptID.rawValue, iova: mapping.iova.rawValue, length: 2 * page, uptr: world.address(buffer))
            #expect(world.rawIoctl(0x3ba0, &command) == nil)
            var wrong = checkMapCommand(hwpt: device.hwptID.rawValue, iova: mapping.iova.rawValue, length: page, uptr: world.address(buffer) + page)
            #expect(world.rawIoctl(0x3ba0, &wrong) == .invalidArgument)
            try world.ioas.unmap(mapping)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 2)
        }
    }

    @Test("memfd memory is shared between mmap, pread and MAP_FILE")
    func memfdSharing() throws {
        try withMockWorld { world in
            let memfd = try world.kernel.memfdCreate("shared", flags: 1)
            try world.kernel.ftruncate(memfd, length: Int64(page))
            let view = try world.kernel.mmap(address: nil, length: Int(page), protection: 3, flags: 1, fd: memfd, offset: 0)
            view.storeBytes(of: 0x42, as: UInt8.self)
            var byte: UInt8 = 0
            _ = try withUnsafeMutableBytes(of: &byte) { try world.kernel.pread(memfd, into: $0, offset: 0) }
            #expect(byte == 0x42)
            try world.kernel.munmap(view, length: Int(page))
            try world.kernel.close(memfd)
        }
    }

    @Test("a descriptor opened without O_CLOEXEC is counted")
    func cloexecIsChecked() throws {
        let kernel = MockKernel()
        let fd = try kernel.open("/dev/iommu", flags: 2, mode: 0)
        #expect(kernel.descriptorsWithoutCloseOnExec == 1)
        try kernel.close(fd)
    }

    @Test("eventfd counts writes and resets on read")
    func eventCounter() throws {
        let kernel = MockKernel()
        let fd = try kernel.eventfd(initialValue: 0, flags: 0o2000000)
        var one: UInt64 = 1
        _ = try withUnsafeBytes(of: &one) { try kernel.write(fd, from: $0) }
        _ = try withUnsafeBytes(of: &one) { try kernel.write(fd, from: $0) }
        var value: UInt64 = 0
        _ = try withUnsafeMutableBytes(of: &value) { try kernel.read(fd, into: $0) }
        #expect(value == 2)
        #expect(throws: Errno.wouldBlock) { _ = try withUnsafeMutableBytes(of: &value) { try kernel.read(fd, into: $0) } }
        try kernel.close(fd)
    }

    @Test("the fake file tree answers readFile, readLink and listDirectory")
    func fakeFiles() throws {
        var configuration = MockKernel.Configuration()
        configuration.files["/sys/bus/pci/devices/0000:00:03.0/vendor"] = Array("0x1234\n".utf8)
        configuration.links["/sys/bus/pci/devices/0000:00:03.0/iommu_group"] = "../../../kernel/iommu_groups/5"
        let kernel = MockKernel(configuration: configuration)
        let observed15 = try kernel.readFile("/sys/bus/pci/devices/0000:00:03.0/vendor")
        #expect(observed15 == Array("0x1234\n".utf8))
        let observed16 = try kernel.readLink("/sys/bus/pci/devices/0000:00:03.0/iommu_group").hasSuffix("/5")
        #expect(observed16)
        let observed17 = try kernel.listDirectory("/sys/bus/pci/devices")
        #expect(observed17 == ["0000:00:03.0"])
        #expect(throws: Errno.noSuchFileOrDirectory) { try kernel.readFile("/sys/nope") }
    }

    @Test("IOMMU_VFIO_IOAS sets, gets and clears the compat IOAS; GET with none is ENODEV (vfio_compat.c:15-26)")
    func vfioIOAS() throws {
        try withMockWorld { world in
            var command = vfioIOASCommand(op: 0, id: 0)
            #expect(world.rawIoctl(0x3b88, &command) == .operationNotSupportedByDevice)
            command = vfioIOASCommand(op: 1, id: world.ioas.id.rawValue)
            #expect(world.rawIoctl(0x3b88, &command) == nil)
            command = vfioIOASCommand(op: 0, id: 0)
            #expect(world.rawIoctl(0x3b88, &command) == nil)
            #expect(command.ioas_id == world.ioas.id.rawValue)
            command = vfioIOASCommand(op: 2, id: 0)
            #expect(world.rawIoctl(0x3b88, &command) == nil)
            command = vfioIOASCommand(op: 0, id: 0)
            #expect(world.rawIoctl(0x3b88, &command) == .operationNotSupportedByDevice, "cleared, there is none again")
        }
    }

    @Test("IOAS_CHANGE_PROCESS refuses anonymous mappings (EINVAL) and accepts memfd ones")
    func changeProcess() throws {
        try withMockWorld { world in
            let memfd = try world.kernel.memfdCreate("m", flags: 1)
            try world.kernel.ftruncate(memfd, length: Int64(page))
            let fileMapping = try world.ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: page)
            var command = changeProcessCommand()
            #expect(world.rawIoctl(0x3b92, &command) == nil)
            let buffer = try world.memory(pages: 1)
            let anonymous = try world.ioas.map(userAddress: world.address(buffer), length: page)
            #expect(world.rawIoctl(0x3b92, &command) == .invalidArgument)
            try world.ioas.unmap(anonymous)
            try world.ioas.unmap(fileMapping)
            try world.kernel.close(memfd)
            try world.release(buffer, pages: 1)
        }
    }
}

import CIOMMUFD

func checkMapCommand(hwpt: UInt32, iova: UInt64, length: UInt64, uptr: UInt64) -> iommu_test_cmd {
    var command = iommu_test_cmd()
    command.size = 72
    command.op = IOMMU_TEST_OP_MD_CHECK_MAP
    command.id = hwpt
    command.check_map.iova = iova
    command.check_map.length = length
    command.check_map.uptr = uptr
    return command
}

func vfioIOASCommand(op: UInt16, id: UInt32) -> iommu_vfio_ioas {
    iommu_vfio_ioas(size: 12, ioas_id: id, op: op, __reserved: 0)
}

func changeProcessCommand() -> iommu_ioas_change_process {
    iommu_ioas_change_process(size: 8, __reserved: 0)
}
