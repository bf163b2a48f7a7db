import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// Every VFIO rule MockKernel models, driven through raw descriptors so each errno is the
/// kernel's answer and not the typed layer's (drivers/vfio/{group,container,vfio_main}.c,
/// vfio_iommu_type1.c, pci/vfio_pci_core.c, pci/vfio_pci_intrs.c).
@Suite("VFIO rules in MockKernel, each with its errno")
struct VFIOMockRulesTests {
    /// A machine, a container with edu's group joined and type1v2 set, and edu's device descriptor.
    struct Legacy {
        let kernel = pciMachine()
        let container: Int32
        let group: Int32
        let device: Int32

        init() throws {
            container = try kernel.open("/dev/vfio/vfio", flags: O_RDWR | O_CLOEXEC, mode: 0)
            group = try kernel.open("/dev/vfio/2", flags: O_RDWR | O_CLOEXEC, mode: 0)
            var fd = container
            _ = try kernel.ioctl(group, VFIO_GROUP_SET_CONTAINER, &fd)
            _ = try kernel.ioctl(container, VFIO_SET_IOMMU, UnsafeMutableRawPointer(bitPattern: VFIO_TYPE1v2_IOMMU))
            device = try Self.getDevice(kernel, group, "0000:00:02.0")
        }

        static func getDevice(_ kernel: MockKernel, _ group: Int32, _ name: String) throws -> Int32 {
            var bytes = Array(name.utf8CString)
            return try bytes.withUnsafeMutableBytes { buffer in
                try kernel.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, buffer.baseAddress)
            }
        }

        func getDevice(_ name: String) throws -> Int32 { try Self.getDevice(kernel, group, name) }

        func close() throws {
            for fd in [device, group, container] { try kernel.close(fd) }
            #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
        }
    }

    func errno(_ body: () throws -> Int32) -> Errno? {
        do { _ = try body(); return nil } catch let error as Errno { return error } catch { Issue.record("\(error)"); return nil }
    }

    @Test("container: SET_IOMMU refuses other IOMMU types (ENODEV) and a second time (EINVAL)")
    func setIOMMU() throws {
        let world = try Legacy()
        #expect(errno { try world.kernel.ioctl(world.container, VFIO_SET_IOMMU, UnsafeMutableRawPointer(bitPattern: VFIO_TYPE1v2_IOMMU)) } == .invalidArgument)
        let other = try world.kernel.open("/dev/vfio/vfio", flags: O_RDWR | O_CLOEXEC, mode: 0)
        let group3 = try world.kernel.open("/dev/vfio/3", flags: O_RDWR | O_CLOEXEC, mode: 0)
        var fd = other
        _ = try world.kernel.ioctl(group3, VFIO_GROUP_SET_CONTAINER, &fd)
        #expect(errno { try world.kernel.ioctl(other, VFIO_SET_IOMMU, UnsafeMutableRawPointer(bitPattern: VFIO_SPAPR_TCE_IOMMU)) } == .operationNotSupportedByDevice)
        #expect(try world.kernel.ioctl(other, VFIO_GET_API_VERSION, nil) == 0)
        try world.kernel.close(group3)
        try world.kernel.close(other)
        try world.close()
    }

    @Test("group: SET_CONTAINER twice EINVAL, with a non-container EBADFD; UNSET EBUSY while a device is open")
    func groupContainer() throws {
        let world = try Legacy()
        var fd = world.container
        #expect(errno { try world.kernel.ioctl(world.group, VFIO_GROUP_SET_CONTAINER, &fd) } == .invalidArgument)
        let group3 = try world.kernel.open("/dev/vfio/3", flags: O_RDWR | O_CLOEXEC, mode: 0)
        var notContainer = world.device
        #expect(errno { try world.kernel.ioctl(group3, VFIO_GROUP_SET_CONTAINER, &notContainer) } == Errno(rawValue: EBADFD))
        var closed: Int32 = 999
        #expect(errno { try world.kernel.ioctl(group3, VFIO_GROUP_SET_CONTAINER, &closed) } == .badFileDescriptor)
        #expect(errno { try world.kernel.ioctl(group3, VFIO_GROUP_UNSET_CONTAINER, nil) } == .invalidArgument)
        #expect(errno { try world.kernel.ioctl(world.group, VFIO_GROUP_UNSET_CONTAINER, nil) } == .resourceBusy)
        try world.kernel.close(group3)
        try world.close()
    }

    @Test("group: a group with no function on vfio-pci has no node (ENOENT); GET_DEVICE_FD: unknown name ENODEV, vf_token for a non-VF EINVAL, no IOMMU yet EINVAL")
    func getDevice() throws {
        let world = try Legacy()
        #expect(errno { try world.kernel.open("/dev/vfio/9", flags: O_RDWR | O_CLOEXEC, mode: 0) } == .noSuchFileOrDirectory)
        #expect(errno { try world.getDevice("0000:00:03.0") } == .operationNotSupportedByDevice)
        #expect(errno { try world.getDevice("0000:00:02.0 vf_token=2ab74924-c335-45f4-9b16-8569e5b08258") } == .invalidArgument)
        let fresh = try world.kernel.open("/dev/vfio/3", flags: O_RDWR | O_CLOEXEC, mode: 0)
        var name = Array("0000:00:03.0".utf8CString)
        #expect(errno { try name.withUnsafeMutableBytes { buffer in try world.kernel.ioctl(fresh, VFIO_GROUP_GET_DEVICE_FD, buffer.baseAddress) } } == .invalidArgument)
        try world.kernel.close(fresh)
        try world.close()
    }

    @Test("type1 MAP_DMA: no access flag or VADDR EINVAL, wrap EOVERFLOW, unbacked memory EFAULT; UNMAP_DMA: unaligned, ALL with a range, dirty bitmap EINVAL")
    func type1Arguments() throws {
        let world = try Legacy()
        let memory = try world.kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        func map(flags: UInt32, vaddr: UInt64, iova: UInt64, size: UInt64) -> Errno? {
            var command = vfio_iommu_type1_dma_map()
            command.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_map>.size)
            command.flags = flags
            command.vaddr = vaddr
            command.iova = iova
            command.size = size
            return errno { try world.kernel.ioctl(world.container, VFIO_IOMMU_MAP_DMA, &command) }
        }
        func unmap(flags: UInt32, iova: UInt64, size: UInt64) -> Errno? {
            var command = vfio_iommu_type1_dma_unmap()
            command.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_unmap>.size)
            command.flags = flags
            command.iova = iova
            command.size = size
            return errno { try world.kernel.ioctl(world.container, VFIO_IOMMU_UNMAP_DMA, &command) }
        }
        let base = UInt64(UInt(bitPattern: memory))
        let readWrite = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE
        #expect(map(flags: 0, vaddr: base, iova: 0x10_0000, size: 4096) == .invalidArgument)
        #expect(map(flags: readWrite | VFIO_DMA_MAP_FLAG_VADDR, vaddr: base, iova: 0x10_0000, size: 4096) == .invalidArgument)
        #expect(map(flags: readWrite, vaddr: base, iova: UInt64.max - 0xfff, size: 0x2000) == .overflow)
        #expect(map(flags: readWrite, vaddr: base + 0x10_0000, iova: 0x10_0000, size: 4096) == .badAddress)
        #expect(map(flags: readWrite, vaddr: base, iova: 0x10_0000, size: 0) == .invalidArgument)
        #expect(unmap(flags: 0, iova: 0x10_0800, size: 4096) == .invalidArgument)
        #expect(unmap(flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 0x10_0000, size: 0) == .invalidArgument)
        #expect(unmap(flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: 0x10_0000, size: 4096) == .invalidArgument)
        var small = vfio_iommu_type1_info()
        small.argsz = 8
        #expect(errno { try world.kernel.ioctl(world.container, VFIO_IOMMU_GET_INFO, &small) } == .invalidArgument)
        try world.kernel.munmap(memory, length: 4096)
        try world.close()
    }

    @Test("device: region index 8 (VGA) and 9 EINVAL, argsz below the fixed part EINVAL, the ERR interrupt index offered to every function (one vector, as 7.3's vfio_pci_get_irq_count), mmap without MAP_SHARED EINVAL")
    func deviceArguments() throws {
        let world = try Legacy()
        for index: UInt32 in [VFIO_PCI_VGA_REGION_INDEX, VFIO_PCI_NUM_REGIONS] {
            var region = vfio_region_info()
            region.argsz = UInt32(MemoryLayout<vfio_region_info>.size)
            region.index = index
            #expect(errno { try world.kernel.ioctl(world.device, VFIO_DEVICE_GET_REGION_INFO, &region) } == .invalidArgument)
        }
        var short = vfio_region_info()
        short.argsz = 16
        #expect(errno { try world.kernel.ioctl(world.device, VFIO_DEVICE_GET_REGION_INFO, &short) } == .invalidArgument)
        var error = vfio_irq_info()
        error.argsz = UInt32(MemoryLayout<vfio_irq_info>.size)
        error.index = VFIO_PCI_ERR_IRQ_INDEX
        #expect(errno { try world.kernel.ioctl(world.device, VFIO_DEVICE_GET_IRQ_INFO, &error) } == nil)
        #expect(error.count == 1 && error.flags == VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE)
        error.index = VFIO_PCI_NUM_IRQS
        #expect(errno { try world.kernel.ioctl(world.device, VFIO_DEVICE_GET_IRQ_INFO, &error) } == .invalidArgument)
        #expect(throws: Errno.invalidArgument) {
            try world.kernel.mmap(address: nil, length: 4096, protection: PROT_READ, flags: MAP_PRIVATE, fd: world.device, offset: 0)
        }
        try world.close()
    }

    @Test("SET_IRQS: two data types, start past the vectors, short argsz, a descriptor that is no eventfd (EINVAL) or none (EBADF)")
    func setInterrupts() throws {
        let world = try Legacy()
        func set(flags: UInt32, index: UInt32 = VFIO_PCI_MSI_IRQ_INDEX, start: UInt32 = 0, count: UInt32 = 1, fd: Int32, argsz: Int? = nil) -> Errno? {
            let size = MemoryLayout<vfio_irq_set>.size + 4
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
            defer { buffer.deallocate() }
            var header = vfio_irq_set()
            header.argsz = UInt32(argsz ?? size)
            header.flags = flags
            header.index = index
            header.start = start
            header.count = count
            buffer.storeBytes(of: header, as: vfio_irq_set.self)
            buffer.storeBytes(of: fd, toByteOffset: MemoryLayout<vfio_irq_set>.size, as: Int32.self)
            return errno { try world.kernel.ioctl(world.device, VFIO_DEVICE_SET_IRQS, buffer.baseAddress) }
        }
        let eventfd = try world.kernel.eventfd(initialValue: 0, flags: Int32(EFD_CLOEXEC))
        let trigger = VFIO_IRQ_SET_ACTION_TRIGGER
        #expect(set(flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_BOOL | trigger, fd: eventfd) == .invalidArgument)
        #expect(set(flags: VFIO_IRQ_SET_DATA_EVENTFD | trigger, start: 1, fd: eventfd) == .invalidArgument)
        #expect(set(flags: VFIO_IRQ_SET_DATA_EVENTFD | trigger, fd: eventfd, argsz: MemoryLayout<vfio_irq_set>.size) == .invalidArgument)
        #expect(set(flags: VFIO_IRQ_SET_DATA_EVENTFD | trigger, fd: world.group) == .invalidArgument)
        #expect(set(flags: VFIO_IRQ_SET_DATA_EVENTFD | trigger, fd: 999) == .badFileDescriptor)
        // A loopback trigger (DATA_NONE with a count) fires a wired vector.
        #expect(set(flags: VFIO_IRQ_SET_DATA_EVENTFD | trigger, fd: eventfd) == nil)
        #expect(set(flags: VFIO_IRQ_SET_DATA_NONE | trigger, fd: -1) == nil)
        var value: UInt64 = 0
        _ = try withUnsafeMutableBytes(of: &value) { try world.kernel.read(eventfd, into: $0) }
        #expect(value == 1)
        try world.kernel.close(eventfd)
        try world.close()
    }

    @Test("cdev: BIND with a VF token for a non-VF EINVAL, with a non-iommufd EBADFD, with no file EBADF; BIND on a group's descriptor EINVAL; ATTACH a PASID to an IOAS EINVAL, PASID 0 the RID, an unknown id ENOENT")
    func cdevArguments() throws {
        let kernel = pciMachine()
        let iommufd = try IOMMUFD(system: kernel)
        let cdev = try kernel.open("/dev/vfio/devices/vfio0", flags: O_RDWR | O_CLOEXEC, mode: 0)
        func bind(_ fd: Int32, to target: Int32, flags: UInt32 = 0, on kernel: MockKernel = kernel) -> Errno? {
            var command = vfio_device_bind_iommufd()
            command.argsz = UInt32(MemoryLayout<vfio_device_bind_iommufd>.size)
            command.flags = flags
            command.iommufd = target
            return errno { try kernel.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &command) }
        }
        #expect(bind(cdev, to: iommufd.fileDescriptor.rawValue, flags: VFIO_DEVICE_BIND_FLAG_TOKEN) == .invalidArgument)
        #expect(bind(cdev, to: cdev) == Errno(rawValue: EBADFD))
        #expect(bind(cdev, to: 999) == .badFileDescriptor)
        #expect(bind(cdev, to: iommufd.fileDescriptor.rawValue) == nil)
        func attach(_ id: UInt32, flags: UInt32 = 0, pasid: UInt32 = 0) -> Errno? {
            var command = vfio_device_attach_iommufd_pt()
            command.argsz = UInt32(MemoryLayout<vfio_device_attach_iommufd_pt>.size)
            command.flags = flags
            command.pt_id = id
            command.pasid = pasid
            return errno { try kernel.ioctl(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &command) }
        }
        let ioas = try iommufd.allocateIOAS()
        // An IOAS's automatic domain is never PASID-compatible (device.c); PASID 0 is the RID (vfio/iommufd.c:203-207).
        #expect(attach(ioas.id.rawValue, flags: VFIO_DEVICE_ATTACH_PASID, pasid: 5) == .invalidArgument)
        #expect(attach(ioas.id.rawValue, flags: VFIO_DEVICE_ATTACH_PASID, pasid: 0) == nil, "PASID 0 attaches the RID")
        #expect(attach(77) == .noSuchFileOrDirectory)
        try kernel.close(cdev)

        let world = try Legacy()
        do {
            let context = try IOMMUFD(system: world.kernel)
            #expect(bind(world.device, to: context.fileDescriptor.rawValue, on: world.kernel) == .invalidArgument)
        }
        try world.close()
        _ = ioas
    }

    @Test("driver attributes: unbind naming another function ENODEV, drivers_probe of an unknown one ENODEV, bind while bound EBUSY; no new files in sysfs (EACCES)")
    func driverAttributes() throws {
        let kernel = pciMachine()
        #expect(throws: Errno.operationNotSupportedByDevice) { try kernel.writeFile("/sys/bus/pci/devices/0000:00:02.0/driver/unbind", Array("0000:00:03.0".utf8)) }
        #expect(throws: Errno.operationNotSupportedByDevice) { try kernel.writeFile("/sys/bus/pci/drivers_probe", Array("0000:00:1f.0".utf8)) }
        #expect(throws: Errno.resourceBusy) { try kernel.writeFile("/sys/bus/pci/drivers/vfio-pci/bind", Array("0000:00:02.0".utf8)) }
        #expect(throws: Errno.permissionDenied) { try kernel.createFile("/sys/bus/pci/new_id", []) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try kernel.removeFile("/etc/driverctl.d/pci-0000:00:02.0") }
    }
}
