import IOMMUFDSystem
import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// VFIO nodes: opening /dev/vfio/N and cdevs, device files and their runtime state, closing them.

extension KernelState {
    // MARK: Nodes

    /// Opens a `/dev/vfio` node, or returns `nil` when `path` is not one.
    mutating func openVFIONode(_ path: String) throws(Errno) -> OpenDescriptor? {
        guard path.hasPrefix("/dev/vfio/") else { return nil }
        guard configuration.files[path] != nil else { throw .noSuchFileOrDirectory }
        if path == "/dev/vfio/vfio" {
            let id = vfio.nextContainerID
            vfio.nextContainerID += 1
            vfio.containers[id] = ContainerState()
            return .vfioContainer(id: id)
        }
        // A no-IOMMU cdev opens only with CAP_SYS_RAWIO (device_cdev.c:38-41).
        if path.hasPrefix("/dev/vfio/devices/noiommu-vfio"), let index = Int(path.dropFirst("/dev/vfio/devices/noiommu-vfio".count)) {
            guard configuration.hasSysRawIO else { throw .notPermitted }
            guard configuration.pciDevices.indices.contains(index), configuration.pciDevices[index].driver == "vfio-pci" else {
                throw .noSuchFileOrDirectory
            }
            return .vfioDevice(fileID: makeDeviceFile(DeviceFile(deviceIndex: index)))
        }
        if path.hasPrefix("/dev/vfio/devices/vfio"), let index = Int(path.dropFirst("/dev/vfio/devices/vfio".count)) {
            guard configuration.pciDevices.indices.contains(index), configuration.pciDevices[index].driver == "vfio-pci" else {
                throw .noSuchFileOrDirectory
            }
            return .vfioDevice(fileID: makeDeviceFile(DeviceFile(deviceIndex: index)))
        }
        guard let number = Int(path.dropFirst("/dev/vfio/".count)) else { throw .noSuchFileOrDirectory }
        // vfio_group_fops_open: one opener at a time, and not while a cdev of it is bound.
        guard vfio.groups[number] == nil else { throw .resourceBusy }
        let members = groupMembers(number)
        guard !members.isEmpty else { throw .noSuchFileOrDirectory }
        if members.contains(where: { (vfio.devices[$0]?.boundCdevs ?? 0) > 0 }) { throw .resourceBusy }
        vfio.groups[number] = GroupState(container: nil)
        return .vfioGroup(number: number)
    }

    func groupMembers(_ number: Int) -> [Int] {
        configuration.pciDevices.indices.filter { configuration.pciDevices[$0].iommuGroup == number }
    }

    mutating func makeDeviceFile(_ file: DeviceFile) -> Int {
        ensureRuntime(file.deviceIndex)
        let id = vfio.nextDeviceFileID
        vfio.nextDeviceFileID += 1
        vfio.deviceFiles[id] = file
        return id
    }

    /// The device's runtime state, made (BAR storage allocated) on first use.
    mutating func ensureRuntime(_ index: Int) {
        guard vfio.devices[index] == nil else { return }
        let device = configuration.pciDevices[index]
        let storage = device.barSizes.map { size -> UInt in
            guard size > 0 else { return 0 }
            let rounded = Int((size + pageSize - 1) & ~(pageSize - 1))
            let base = UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: Int(pageSize))
            unsafe base.initializeMemory(as: UInt8.self, repeating: 0, count: rounded)
            return UInt(bitPattern: base)
        }
        var configuration = device.initialConfiguration
        // The firmware left memory decoding on, and vfio-pci's enable keeps it
        // (pci_enable_device): a dma-buf exported right after open is live.
        configuration[0x04] |= UInt8(PCICommand.memory)
        vfio.devices[index] = DeviceRuntime(configuration: configuration, barStorage: storage)
    }

    /// Closing a device descriptor: a bound cdev is detached and unbound; when the last
    /// descriptor of the function goes, vfio-pci disables its interrupts and bus mastering.
    mutating func closeDeviceFile(_ id: Int) {
        guard let file = vfio.deviceFiles.removeValue(forKey: id) else { return }
        if let contextID = file.boundContext, let deviceID = file.boundDeviceID, contexts[contextID] != nil {
            // vfio_iommufd_physical_unbind (vfio/iommufd.c:135-151): every PASID, then the RID.
            detachAllPASIDs(contextID, deviceID)
            detachDevice(contextID, deviceID)
            tombstoneVDevice(of: deviceID, contextID)
            contexts[contextID]!.objects[deviceID] = nil
            vfio.devices[file.deviceIndex]?.boundCdevs -= 1
            releaseOrphanedContext(contextID)
        }
        if !vfio.deviceFiles.values.contains(where: { $0.deviceIndex == file.deviceIndex }) {
            vfio.devices[file.deviceIndex]?.interruptKind = nil
            vfio.devices[file.deviceIndex]?.triggers = []
            vfio.devices[file.deviceIndex]?.configuration[0x04] &= ~UInt8(PCICommand.busMaster)
            // vfio_pci_dma_buf_cleanup (vfio_pci_dmabuf.c:380-406): revoked for good.
            moveDMABufs(ofDevice: file.deviceIndex, revoked: true, forever: true)
        }
    }

    /// An iommufd closed while devices were bound lives until the last of them unbinds.
    /// Whether something other than its own descriptor keeps a context open: a bound VFIO
    /// device, or an event queue's file (which holds the iommufd file, eventq.c:432-433).
    func contextHeld(_ contextID: Int) -> Bool {
        vfio.deviceFiles.values.contains { $0.boundContext == contextID } || descriptors.values.contains { descriptor in
            if case .eventQueue(let owner, _) = descriptor { return owner == contextID }
            return false
        }
    }

    mutating func releaseOrphanedContext(_ contextID: Int) {
        guard vfio.orphanedContexts.contains(contextID), !contextHeld(contextID) else { return }
        vfio.orphanedContexts.remove(contextID)
        destroyContext(contextID)
    }
}
