import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Where the model used to drift from Linux 7.3 with nothing comparing it: each test asserts
/// the kernel's answer, with the kernel's file and lines. The VM lane runs the same rules as
/// differential scenarios (hw-tests/scenarios/k-kernel-answers.scenarios) where it can.
@Suite("MockKernel answers as the 7.3 kernel does")
struct KernelAnswersTests {
    @Test("GET_HW_INFO on a selftest mock device: type 0xfeedbeef, test_reg 0xdeadbeef, data_len rewritten, the rest zeroed (device.c:1629-1745, selftest.c:304-321)")
    func selftestHardwareInfo() throws {
        try withMockWorld { world in
            let mock = try world.ioas.selftestAttachMockDomain()
            var data = [UInt32](repeating: 0xffff_ffff, count: 4)  // 16 bytes: twice the driver's 8
            var command = hardwareInfoCommand(device: mock.deviceID.rawValue)
            command.data_len = 16
            let answer = data.withUnsafeMutableBytes { bytes in
                command.data_uptr = UInt64(UInt(bitPattern: bytes.baseAddress))
                return world.rawIoctl(IOMMU_GET_HW_INFO, &command)
            }
            #expect(answer == nil)
            #expect(command.out_data_type == 0xfeed_beef)
            #expect(command.data_len == 8, "the kernel's length, not the caller's")
            #expect(data == [0, 0xdead_beef, 0, 0], "flags, test_reg, then the larger buffer zeroed")
            #expect(command.out_capabilities == IOMMU_HW_CAP_DIRTY_TRACKING | IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED)
            #expect(command.out_max_pasid_log2 == 0)
            // Asking for the selftest type explicitly works; for VT-d's it is EOPNOTSUPP.
            command = hardwareInfoCommand(device: mock.deviceID.rawValue, flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, type: 0xfeed_beef)
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == nil)
            command = hardwareInfoCommand(device: mock.deviceID.rawValue, flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, type: IOMMU_HW_INFO_TYPE_INTEL_VTD)
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == .notSupported)
            // Without the flag the input type is ignored (cleared by the kernel).
            command = hardwareInfoCommand(device: mock.deviceID.rawValue, type: IOMMU_HW_INFO_TYPE_INTEL_VTD)
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == nil)
            #expect(command.out_data_type == 0xfeed_beef)
            try world.ioas.iommufd.destroy(mock.selftestID)
        }
    }

    @Test("GET_HW_INFO checks flags and __reserved before it looks the device up (EOPNOTSUPP, not ENOENT)")
    func hardwareInfoCheckOrder() throws {
        try withMockWorld { world in
            var command = hardwareInfoCommand(device: 99, flags: 1 << 1)
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == .notSupported)
            command = hardwareInfoCommand(device: 99)
            command.__reserved.1 = 1
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == .notSupported)
            command = hardwareInfoCommand(device: 99)
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == .noSuchFileOrDirectory)
            // An IOAS is not a device.
            command = hardwareInfoCommand(device: world.ioas.id.rawValue)
            #expect(world.rawIoctl(IOMMU_GET_HW_INFO, &command) == .noSuchFileOrDirectory)
        }
    }

    @Test("IOAS_COPY from a read-only mapping into a WRITEABLE one is EPERM; read-only is fine (io_pagetable.c:216-217)")
    func copyNeedsWritablePages() throws {
        try withMockWorld { world in
            let memory = try world.memory(pages: 4)
            defer { try? world.release(memory, pages: 4) }
            let source = try world.ioas.map(userAddress: world.address(memory), length: 4 * page, at: IOVA(0x10_0000), access: .readable)
            let destination = try world.iommufd.allocateIOAS()
            #expect(errnoOf { try destination.copy(from: world.ioas, iova: source.iova, length: 4 * page, to: IOVA(0x20_0000), access: .readWrite) } == .notPermitted)
            let copied = try destination.copy(from: world.ioas, iova: source.iova, length: 4 * page, to: IOVA(0x20_0000), access: .readable)
            #expect(copied.iova == IOVA(0x20_0000))
            // Nothing of the refused copy stayed behind: the same range maps again.
            try destination.unmap(copied)
            try world.ioas.unmap(source)
        }
    }

    @Test("HWPT_ALLOC: the data type/length pair EINVAL, a pt_id that does not resolve EINVAL (not ENOENT), a paging HWPT with the selftest IOMMU's flags allocates; nested selftest data shorter than its first field is EINVAL, at its first field's length it allocates")
    func hardwarePageTableAlloc() throws {
        try withMockWorld { world in
            let mock = try world.ioas.selftestAttachMockDomain()
            var alloc = iommu_hwpt_alloc()
            alloc.size = UInt32(MemoryLayout<iommu_hwpt_alloc>.size)
            alloc.dev_id = mock.deviceID.rawValue
            alloc.pt_id = world.ioas.id.rawValue
            alloc.data_len = 8
            #expect(world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc) == .invalidArgument, "data_len without a data type")
            alloc.data_len = 0
            alloc.pt_id = 999
            #expect(world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc) == .invalidArgument, "iommufd_hwpt_alloc answers EINVAL for a pt_id it cannot find")
            alloc.pt_id = world.ioas.id.rawValue
            alloc.flags = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_PASID
            #expect(world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc) == nil)
            let parent = alloc.out_hwpt_id
            let selftestData = try world.memory(pages: 1)  // struct iommu_hwpt_selftest, zeroed
            defer { try? world.release(selftestData, pages: 1) }
            alloc.pt_id = parent
            alloc.flags = 0
            alloc.data_type = 0xdead
            alloc.data_len = 3
            alloc.data_uptr = world.address(selftestData)
            #expect(world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc) == .invalidArgument, "iommu_copy_struct_from_user: shorter than offsetofend(iotlb)")
            alloc.data_len = 4
            #expect(world.rawIoctl(IOMMU_HWPT_ALLOC, &alloc) == nil)
            try world.iommufd.destroy(HWPTID(rawValue: alloc.out_hwpt_id))
            try world.iommufd.destroy(HWPTID(rawValue: parent))
            try world.ioas.iommufd.destroy(mock.selftestID)
        }
    }

    @Test("commands the model does not implement answer ENOSYS and are recorded, never an invented errno")
    func unmodelledCommandsAreLoud() throws {
        try withMockWorld(unmodelled: [.testCommand, .testCommand]) { world in
            // The selftest's in-kernel accesses and dma-bufs are the kernel's, not the model's.
            for op in [IOMMU_TEST_OP_CREATE_ACCESS, IOMMU_TEST_OP_DMABUF_GET] {
                var command = iommu_test_cmd()
                command.size = UInt32(MemoryLayout<iommu_test_cmd>.size)
                command.op = op
                #expect(world.rawIoctl(IOMMU_TEST_CMD, &command) == .noFunction)
            }
        }
    }

    @Test("IOAS_NOIOMMU_GET_PA follows the kernel's configuration: EOPNOTSUPP without CONFIG_IOMMUFD_NOIOMMU, EPERM without CAP_SYS_RAWIO, then the arguments (ioas.c:379-396)")
    func noIOMMUGetPA() throws {
        func command(_ ioas: UInt32, length: UInt64 = page, iova: UInt64 = 0, flags: UInt32 = 0) -> iommu_ioas_noiommu_get_pa {
            var command = iommu_ioas_noiommu_get_pa()
            command.size = UInt32(MemoryLayout<iommu_ioas_noiommu_get_pa>.size)
            command.ioas_id = ioas
            command.length = length
            command.iova = iova
            command.flags = flags
            return command
        }
        try withMockWorld(configure: { $0.noIOMMUEnabled = false }) { world in
            var get = command(world.ioas.id.rawValue)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .notSupported)
        }
        try withMockWorld { world in
            var get = command(world.ioas.id.rawValue)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .notPermitted)
        }
        try withMockWorld(configure: { $0.hasSysRawIO = true }) { world in
            var get = command(world.ioas.id.rawValue, flags: 1)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .notSupported)
            get = command(world.ioas.id.rawValue, length: 0)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .invalidArgument)
            get = command(world.ioas.id.rawValue, iova: .max)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .overflow)
            get = command(99)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .noSuchFileOrDirectory)
            get = command(world.ioas.id.rawValue)
            #expect(world.rawIoctl(IOMMU_IOAS_NOIOMMU_GET_PA, &get) == .noSuchFileOrDirectory, "nothing mapped at the IOVA (io_pagetable.c:880-884)")
        }
    }
}

/// A GET_HW_INFO command for `device` with no data buffer.
func hardwareInfoCommand(device: UInt32, flags: UInt32 = 0, type: UInt32 = 0) -> iommu_hw_info {
    var command = iommu_hw_info()
    command.size = UInt32(MemoryLayout<iommu_hw_info>.size)
    command.dev_id = device
    command.flags = flags
    command.in_data_type = type
    return command
}

@Suite("MockKernel's /proc/self/status")
struct ProcessStatusTests {
    @Test("pid, VmPin for iommufd's pins, VmLck 0 with no type1 mapping, and CapEff from the configured capabilities")
    func status() throws {
        try withMockWorld(configure: { $0.hasSysResource = true; $0.hasSysRawIO = true }) { world in
            let memory = try world.memory(pages: 16)
            defer { try? world.release(memory, pages: 16) }
            let device = try world.ioas.selftestAttachMockDomain()
            let mapping = try world.ioas.map(userAddress: world.address(memory), length: 16 * page)
            let status = String(decoding: try world.kernel.readFile("/proc/self/status"), as: UTF8.self)
            #expect(status.contains("Pid:\t4242\n"))
            #expect(status.contains("VmPin:\t64 kB\n"), "16 pinned pages: \(status)")
            #expect(status.contains("VmLck:\t0 kB\n"))
            #expect(status.contains("CapEff:\t0000000001020000\n"), "CAP_SYS_RAWIO and CAP_SYS_RESOURCE")
            #expect(ProcessCapabilities(system: world.kernel)?.hasIPCLock == false)
            try world.ioas.unmap(mapping)
            try world.iommufd.destroy(device.selftestID)
        }
    }
}

@Suite("pinned pages outlive munmap, as the kernel keeps them")
struct PinnedPagesOutliveMunmapTests {
    @Test("iommufd: a buffer unmapped by the process while mapped for a domain stays alive; a device still writes it at its IOVA; it goes with the IOMMU unmap")
    func iommufdKeepsPinnedPages() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let memory = try world.memory(pages: 4)
            let mapping = try world.ioas.map(userAddress: world.address(memory), length: 4 * page)
            try world.release(memory, pages: 4)
            #expect(world.kernel.leaks.retainedMemory == 1, "the pages are pinned: the kernel keeps them")
            #expect(world.kernel.deviceWrite(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue + 8, bytes: [1, 2, 3]))
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue + 8, length: 3) == [1, 2, 3])
            try world.ioas.unmap(mapping)
            #expect(world.kernel.leaks.retainedMemory == 0, "unpinned, freed")
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("iommufd without a domain pins nothing: an unmapped buffer is gone, and attaching a domain then is EFAULT")
    func iommufdWithoutDomainPinsNothing() throws {
        try withMockWorld { world in
            let memory = try world.memory(pages: 4)
            let mapping = try world.ioas.map(userAddress: world.address(memory), length: 4 * page, at: IOVA(IOMMU_TEST_MOCK_APERTURE_START))
            try world.release(memory, pages: 4)
            #expect(world.kernel.leaks.retainedMemory == 0)
            #expect(errnoOf { try world.ioas.selftestAttachMockDomain() } == .badAddress)
            try world.ioas.unmap(mapping)
        }
    }

    @Test("type1: the pages pinned at MAP_DMA stay alive after munmap and the device still reaches them; they go with UNMAP_DMA")
    func type1KeepsPinnedPages() throws {
        let world = try VFIOMockRulesTests.Legacy()
        let (kernel, container, device) = (world.kernel, world.container, world.device)
        let memory = try kernel.mmap(address: nil, length: 16384, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        var map = vfio_iommu_type1_dma_map()
        map.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_map>.size)
        map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE
        map.vaddr = UInt64(UInt(bitPattern: memory))
        map.iova = 0x10_0000
        map.size = 16384
        _ = try kernel.ioctl(container, VFIO_IOMMU_MAP_DMA, &map)
        let busMaster: [UInt8] = [0x4, 0]  // the command register: Bus Master Enable
        _ = try busMaster.withUnsafeBytes { try kernel.pwrite(device, from: $0, offset: Int64(VFIO_PCI_CONFIG_REGION_INDEX) << 40 | 4) }
        try kernel.munmap(memory, length: 16384)
        #expect(kernel.leaks.retainedMemory == 1)
        #expect(kernel.pciDeviceWrite("0000:00:02.0", iova: 0x10_0010, bytes: [7, 7]))
        #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x10_0010, length: 2) == [7, 7])
        var unmap = vfio_iommu_type1_dma_unmap()
        unmap.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_unmap>.size)
        unmap.iova = 0x10_0000
        unmap.size = 16384
        _ = try kernel.ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap)
        #expect(kernel.leaks.retainedMemory == 0)
        try world.close()
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}

@Suite("the selftest operations MockKernel does not model are refused loudly")
struct SelftestOperationsTests {
    @Test("MD_CHECK_REFS (the kernel's pin-count oracle) and the other implemented ops answer ENOSYS and are recorded; an op number the kernel does not know is EOPNOTSUPP (selftest.c:2183)")
    func unmodelledSelftestOperations() throws {
        try withMockWorld(unmodelled: [.testCommand, .testCommand, .testCommand]) { world in
            let seam = IOCTLSeam(world.kernel)
            #expect(errnoOf { try SelftestIOCTL.checkRefs(seam, world.fd, userAddress: 0x1000, length: 4096, refs: 0, fileID: #fileID, line: #line) } == .noFunction)
            for op: UInt32 in [5, 23] {  // CREATE_ACCESS, DMABUF_REVOKE
                var command = iommu_test_cmd()
                command.size = UInt32(MemoryLayout<iommu_test_cmd>.size)
                command.op = op
                #expect(world.rawIoctl(IOMMU_TEST_CMD, &command) == .noFunction)
            }
            var unknown = iommu_test_cmd()
            unknown.size = UInt32(MemoryLayout<iommu_test_cmd>.size)
            unknown.op = 24
            #expect(world.rawIoctl(IOMMU_TEST_CMD, &unknown) == .notSupported)
        }
    }
}

@Suite("/dev/iommu as a type1 container")
struct CompatibilityContainerTests {
    @Test("the version and extension queries are answered; setting the IOMMU and mapping through the compat layer are refused loudly (ENOSYS, recorded); other requests below 0x80 are ENOTTY")
    func compatibilityIoctls() throws {
        try withMockWorld(unmodelled: [.vfioSetIOMMU, .vfioIOMMUMapDMA]) { world in
            let version = try world.kernel.ioctl(world.fd, VFIO_GET_API_VERSION, nil)
            #expect(version == 0)
            let typeOneV2 = try world.kernel.ioctl(world.fd, VFIO_CHECK_EXTENSION, UnsafeMutableRawPointer(bitPattern: VFIO_TYPE1v2_IOMMU))
            #expect(typeOneV2 == 1)
            #expect(world.rawIoctl(VFIO_SET_IOMMU, UnsafeMutableRawPointer(bitPattern: VFIO_TYPE1v2_IOMMU)) == .noFunction)
            var map = vfio_iommu_type1_dma_map()
            map.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_map>.size)
            #expect(world.rawIoctl(VFIO_IOMMU_MAP_DMA, &map) == .noFunction)
            #expect(world.rawIoctl(0x3b7e, nil) == .inappropriateIOCTLForDevice)
        }
    }
}

@Suite("MockKernel's directories")
struct DirectoryTests {
    @Test("an empty directory lists as empty, a missing one is ENOENT; /dev/vfio/devices goes with its last node, as devtmpfs removes empty parents")
    func emptyDirectories() throws {
        var configuration = MockKernel.Configuration()
        configuration.directories = ["/sys/kernel/iommu_groups"]
        configuration.addPCIDevice(.edu(group: 2))
        let kernel = MockKernel(configuration: configuration)
        #expect(try kernel.listDirectory("/sys/kernel/iommu_groups") == ["2"])
        #expect(try kernel.listDirectory("/dev/vfio/devices") == ["vfio0"])
        kernel.setDriver(nil, of: "0000:00:02.0")
        #expect(throws: Errno.noSuchFileOrDirectory) { try kernel.listDirectory("/dev/vfio/devices") }
        let empty = MockKernel(configuration: { var c = MockKernel.Configuration(); c.directories = ["/sys/kernel/iommu_groups"]; return c }())
        #expect(try empty.listDirectory("/sys/kernel/iommu_groups") == [])
        #expect(throws: Errno.noSuchFileOrDirectory) { try empty.listDirectory("/sys/kernel/nothing") }
    }
}

@Suite("memfd mappings are views of the file's pages, as shmem's are")
struct MemoryFileMappingTests {
    /// A memfd of `pages` pages, made with close-on-exec as the toolkit makes them.
    static func memoryFile(_ kernel: MockKernel, _ name: String, pages: UInt64) throws -> Int32 {
        let fd = try kernel.memfdCreate(name, flags: CIOMMUFD_MFD_CLOEXEC)
        try kernel.ftruncate(fd, length: Int64(pages * page))
        return fd
    }

    /// A shared read-write mapping of `length` bytes of `fd`.
    static func view(_ kernel: MockKernel, _ fd: Int32, length: Int, offset: Int64 = 0) throws -> UnsafeMutableRawPointer {
        try kernel.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: offset)
    }

    @Test("two mmaps of one memfd: two addresses, one set of pages (a write through one is read through the other and by pread; the domain sees one page: MD_CHECK_MAP compares pages, selftest.c:1187-1240)")
    func twoViewsShareThePages() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let fd = try Self.memoryFile(world.kernel, "views", pages: 4)
            let first = try Self.view(world.kernel, fd, length: Int(4 * page))
            let second = try Self.view(world.kernel, fd, length: Int(4 * page))
            #expect(first != second, "mm/mmap.c gives each mapping its own address")
            first.storeBytes(of: 0x5a, toByteOffset: Int(page) + 3, as: UInt8.self)
            #expect(second.load(fromByteOffset: Int(page) + 3, as: UInt8.self) == 0x5a)
            var byte: UInt8 = 0
            _ = try withUnsafeMutableBytes(of: &byte) { try world.kernel.pread(fd, into: $0, offset: Int64(page) + 3) }
            #expect(byte == 0x5a)
            let mapping = try world.ioas.map(userAddress: world.address(second), length: 4 * page)
            try world.iommufd.selftestCheckMap(device, iova: mapping.iova, length: 4 * page, address: first)
            #expect(errnoOf { try world.iommufd.selftestCheckMap(device, iova: mapping.iova, length: page, address: first + Int(page)) } == .invalidArgument,
                    "another page of the file is not the one the domain maps")
            try world.ioas.unmap(mapping)
            try world.kernel.munmap(first, length: Int(4 * page))
            try world.kernel.munmap(second, length: Int(4 * page))
            try world.kernel.close(fd)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("a mapping may reach past the end of the file; pinning a page there is EFAULT (shmem_fault: SIGBUS beyond i_size); after the file grows, while mapped, the same mapping pins")
    func growingAMappedMemoryFile() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let fd = try Self.memoryFile(world.kernel, "grow", pages: 2)
            let view = try Self.view(world.kernel, fd, length: Int(8 * page))
            view.storeBytes(of: 7, toByteOffset: 0, as: UInt8.self)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(view), length: 8 * page) } == .badAddress)
            let head = try world.ioas.map(userAddress: world.address(view), length: 2 * page)
            try world.kernel.ftruncate(fd, length: Int64(8 * page))
            #expect(view.load(fromByteOffset: 0, as: UInt8.self) == 7, "the mapping keeps its address and its pages")
            view.storeBytes(of: 9, toByteOffset: Int(6 * page), as: UInt8.self)
            let whole = try world.ioas.map(userAddress: world.address(view), length: 8 * page)
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: whole.iova.rawValue + 6 * page, length: 1) == [9])
            try world.ioas.unmap(whole)
            try world.ioas.unmap(head)
            try world.kernel.munmap(view, length: Int(8 * page))
            try world.kernel.close(fd)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("a view unmapped by the process while pinned keeps its pages for the device; the file goes when the last pin does")
    func pinnedViewOutlivesMunmapAndClose() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let fd = try Self.memoryFile(world.kernel, "pinned", pages: 2)
            let view = try Self.view(world.kernel, fd, length: Int(2 * page))
            let mapping = try world.ioas.map(userAddress: world.address(view), length: 2 * page)
            try world.kernel.munmap(view, length: Int(2 * page))
            try world.kernel.close(fd)
            #expect(world.kernel.leaks.retainedMemory >= 1, "the pinned view is kept")
            #expect(world.kernel.deviceWrite(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue + 5, bytes: [4, 2]))
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue + 5, length: 2) == [4, 2])
            try world.ioas.unmap(mapping)
            #expect(world.kernel.leaks.retainedMemory == 0)
            try world.iommufd.destroy(device.selftestID)
        }
    }
}
