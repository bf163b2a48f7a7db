import IOMMUFDSystem
import CIOMMUFD
import SystemPackage

/// The user's command buffer after `copy_struct_from_user`: a kernel-sized copy, and
/// the ability to write the answer back (`iommufd_ucmd_respond`).
// @unsafe: it holds the caller's pointer and a buffer it frees by hand.
@unsafe
struct UserCommand {
    let user: UnsafeMutableRawPointer
    let userSize: Int
    let kernel: UnsafeMutableRawPointer

    func load<T>(_ type: T.Type) -> T { unsafe kernel.load(as: T.self) }

    func respond<T>(_ value: T) {
        var value = value
        unsafe withUnsafeBytes(of: &value) { bytes in
            unsafe user.copyMemory(from: bytes.baseAddress!, byteCount: min(userSize, bytes.count))
        }
    }
}

extension KernelState {
    /// `iommufd_fops_ioctl`: the ABI rules common to every command, then the command.
    mutating func iommufdIoctl(contextID: Int, request: UInt, argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let nr = UInt32(request & 0xff)
        let tableEnd: UInt32 = configuration.selftestEnabled ? 0xa0 : 0x95
        // Outside the table the kernel serves the type1 compatibility ioctls
        // (iommufd_vfio_ioctl, vfio_compat.c:513-536); anything else is ENOTTY.
        guard nr >= 0x80, nr <= tableEnd else { return try vfioCompatibilityIoctl(contextID, request: request, argument: UInt(bitPattern: argument)) }
        guard let argument = unsafe argument else { throw .badAddress }
        let userSize = unsafe Int(argument.loadUnaligned(as: UInt32.self))
        // The kernel's table (iommufd_ioctl_ops), from the toolkit's one descriptor table.
        guard let operation = IOMMUOperation(request: request, family: .iommufd) ?? IOMMUOperation(request: request, family: .selftest),
              let shape = operation.ioctl else { throw .inappropriateIOCTLForDevice }
        let implemented = operation == .testCommand ? configuration.selftestEnabled : configuration.supportedCommands.contains(nr)
        guard implemented else { throw .inappropriateIOCTLForDevice }
        guard userSize >= shape.minimumSize else { throw .invalidArgument }

        let kernel = UnsafeMutableRawPointer.allocate(byteCount: shape.kernelSize, alignment: 8)
        defer { unsafe kernel.deallocate() }
        unsafe kernel.initializeMemory(as: UInt8.self, repeating: 0, count: shape.kernelSize)
        unsafe kernel.copyMemory(from: argument, byteCount: min(userSize, shape.kernelSize))
        if userSize > shape.kernelSize {
            let tail = unsafe UnsafeRawBufferPointer(start: argument + shape.kernelSize, count: userSize - shape.kernelSize)
            guard unsafe tail.allSatisfy({ $0 == 0 }) else { throw .argListTooLong }
        }
        let command = unsafe UserCommand(user: argument, userSize: userSize, kernel: kernel)
        switch operation {
        case .destroy: unsafe try destroy(contextID, command)
        case .ioasAlloc: unsafe try ioasAlloc(contextID, command)
        case .ioasAllowIOVAs: unsafe try ioasAllowIOVAs(contextID, command)
        case .ioasCopy: unsafe try ioasCopy(contextID, command)
        case .ioasIOVARanges: unsafe try ioasIOVARanges(contextID, command)
        case .ioasMap: unsafe try ioasMap(contextID, command)
        case .ioasUnmap: unsafe try ioasUnmap(contextID, command)
        case .option: unsafe try option(contextID, command)
        case .vfioIOAS: unsafe try vfioIOAS(contextID, command)
        case .ioasMapFile: unsafe try ioasMapFile(contextID, command)
        case .ioasChangeProcess: unsafe try ioasChangeProcess(contextID, command)
        case .testCommand: unsafe try selftest(contextID, command)
        default: unsafe try unmodelledCommand(contextID, operation, command)
        }
        return 0
    }

    // MARK: Objects

    mutating func destroy(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        let id = unsafe command.load(iommu_destroy.self).id
        try destroyObject(contextID, id)
    }

    /// `iommufd_object_remove`: only an object nobody else holds can go.
    mutating func destroyObject(_ contextID: Int, _ id: UInt32) throws(Errno) {
        guard let object = contexts[contextID]?.objects[id] else { throw .noSuchFileOrDirectory }
        switch object {
        case .ioas:
            let referenced = contexts[contextID]!.objects.values.contains { object in
                if case .hwptPaging(let hwpt) = object { return hwpt.ioasID == id }
                return false
            }
            if referenced { throw .resourceBusy }
            if contexts[contextID]!.vfioIOAS == id { contexts[contextID]!.vfioIOAS = nil }
            var table = contexts[contextID]!.ioas(id)!
            for area in table.removeAllAreas() { dropPagesReference(contextID, area.pagesID) }
            contexts[contextID]!.objects[id] = nil
        case .hwptPaging(let hwpt):
            // Devices and nested HWPTs on it hold references (hw_pagetable.c:262).
            let parentOfNested = contexts[contextID]!.objects.values.contains { object in
                if case .hwptNested(let nested) = object { return nested.parentID == id }
                return false
            }
            let parentOfVIOMMU = contexts[contextID]!.objects.values.contains { object in
                if case .viommu(let viommu) = object { return viommu.parentID == id }
                return false
            }
            if hwpt.attachedDevices > 0 || parentOfNested || parentOfVIOMMU { throw .resourceBusy }
            contexts[contextID]!.objects[id] = nil
            removeDomain(contextID, ioasID: hwpt.ioasID, hwptID: id)
        case .hwptNested(let nested):
            if nested.attachedDevices > 0 { throw .resourceBusy }
            contexts[contextID]!.objects[id] = nil
        case .viommu(let viommu):
            // Nested HWPTs (hw_pagetable.c:320), vDEVICEs (viommu.c:214), vEVENTQs
            // (eventq.c:540) and HW queues (viommu.c:432) on it hold references.
            let busy = contexts[contextID]!.objects.values.contains { object in
                switch object {
                case .hwptNested(let nested): nested.viommuID == id
                case .vdevice(let vdevice): vdevice.viommuID == id
                case .veventq(let queue): queue.viommuID == id
                case .hwQueue(let queue): queue.viommuID == id
                default: false
                }
            }
            if busy { throw .resourceBusy }
            if let offset = viommu.mmapOffset { contexts[contextID]!.mmapRegions[offset] = nil }
            contexts[contextID]!.hwQueueSlots[id] = nil
            contexts[contextID]!.objects[id] = nil
        case .vdevice:
            // Nothing holds a vDEVICE, not even an attachment through it (viommu.c:119-147).
            contexts[contextID]!.objects[id] = nil
        case .veventq(let queue):
            // Its open file holds it (eventq.c:435).
            if queue.fileOpen { throw .resourceBusy }
            contexts[contextID]!.objects[id] = nil
        case .hwQueue(let queue):
            // The queue after it holds it (selftest.c:761-765); the selftest driver then
            // empties slot 0 whatever the queue's index (selftest.c:711-722, index never set).
            let held = contexts[contextID]!.objects.values.contains { object in
                if case .hwQueue(let other) = object { return other.dependsOn == id }
                return false
            }
            if held { throw .resourceBusy }
            contexts[contextID]!.hwQueueSlots[queue.viommuID]?[0] = nil
            contexts[contextID]!.objects[queue.accessID] = nil
            contexts[contextID]!.objects[id] = nil
        case .access:
            // Held by the driver that made it (device.c:1233).
            throw .resourceBusy
        case .fault(let queue):
            if faultQueueHeld(contextID, id, queue) { throw .resourceBusy }
            contexts[contextID]!.objects[id] = nil
        case .tombstone:
            throw .noSuchFileOrDirectory
        case .device:
            // Held by its driver (the VFIO device or the selftest object).
            throw .resourceBusy
        case .selftest(let deviceID):
            // iommufd_selftest_destroy (selftest.c:1944-1957) detaches the RID only: the
            // PASIDs' holds on their HWPTs stay (EBUSY to destroy) until the context closes.
            detachDevice(contextID, deviceID)
            tombstoneVDevice(of: deviceID, contextID)
            contexts[contextID]!.objects[deviceID] = nil
            contexts[contextID]!.objects[id] = nil
        }
    }

    /// Unbinding a device turns its vDEVICE into a tombstone (`iommufd_device_remove_vdev`,
    /// device.c:166-208): its id is never handed out again in this context and destroying
    /// it is ENOENT; its virtual id and its hold on the vIOMMU go.
    mutating func tombstoneVDevice(of deviceID: UInt32, _ contextID: Int) {
        for (id, object) in contexts[contextID]!.objects {
            if case .vdevice(let vdevice) = object, vdevice.deviceID == deviceID { contexts[contextID]!.objects[id] = .tombstone }
        }
    }

    /// Closing `/dev/iommu` destroys everything the context still holds.
    mutating func destroyContext(_ contextID: Int) {
        guard let context = contexts[contextID] else { return }
        for (id, object) in context.objects { if case .selftest = object { try? destroyObject(contextID, id) } }
        // What destroyed mock devices left attached by PASID goes regardless
        // (iommufd_fops_release destroys every object, main.c).
        for id in contexts[contextID]!.objects.keys { contexts[contextID]!.adjustAttachments(ofHWPT: id, by: -contexts[contextID]!.attachedDevices(ofHWPT: id)) }
        for (id, object) in contexts[contextID]!.objects {
            switch object {
            case .vdevice, .veventq, .hwQueue, .access, .tombstone, .fault: contexts[contextID]!.objects[id] = nil
            default: break
            }
        }
        for (id, object) in contexts[contextID]!.objects { if case .hwptNested = object { try? destroyObject(contextID, id) } }
        for (id, object) in contexts[contextID]!.objects { if case .viommu = object { try? destroyObject(contextID, id) } }
        for (id, object) in contexts[contextID]!.objects { if case .hwptPaging = object { try? destroyObject(contextID, id) } }
        for (id, object) in contexts[contextID]!.objects { if case .ioas = object { try? destroyObject(contextID, id) } }
        try? repin(contextID)
        contexts[contextID] = nil
    }

    mutating func ioasAlloc(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_alloc.self)
        guard cmd.flags == 0 else { throw .notSupported }
        cmd.out_ioas_id = contexts[contextID]!.insert(.ioas(IOPageTable()))
        unsafe command.respond(cmd)
    }
}

extension KernelState {
    /// `iommufd_vfio_ioctl` (vfio_compat.c:513-536): `/dev/iommu` answers the type1 container
    /// ioctls, so a VFIO program can use it as its container. The version and the
    /// extension query are modelled; setting the IOMMU, its info and DMA mapping through the
    /// compat layer are not (ENOSYS, recorded); any other request is ENOTTY.
    mutating func vfioCompatibilityIoctl(_ contextID: Int, request: UInt, argument: UInt) throws(Errno) -> Int32 {
        switch request {
        case VFIO_GET_API_VERSION:
            return VFIO_API_VERSION
        case VFIO_CHECK_EXTENSION:
            // iommufd_vfio_check_extension (vfio_compat.c:279-308), outside no-IOMMU mode.
            switch argument {
            case UInt(VFIO_TYPE1_IOMMU), UInt(VFIO_TYPE1v2_IOMMU), UInt(VFIO_UNMAP_ALL): return 1
            case UInt(VFIO_NOIOMMU_IOMMU): return configuration.noIOMMUEnabled ? 1 : 0
            case UInt(VFIO_DMA_CC_IOMMU):
                // iommufd_vfio_cc_iommu: needs the compat IOAS (ENODEV without); the modelled
                // domains all enforce cache coherency.
                guard contexts[contextID]!.vfioIOAS != nil else { throw .operationNotSupportedByDevice }
                return 1
            default: return 0
            }
        case VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA:
            let operation = IOMMUOperation(request: request, family: .vfioContainer)
            unmodelledCalls.append(operation ?? .vfioSetIOMMU)
            throw .noFunction
        default:
            throw .inappropriateIOCTLForDevice
        }
    }
}
