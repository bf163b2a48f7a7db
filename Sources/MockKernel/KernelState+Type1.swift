import IOMMUFDSystem
import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// The legacy VFIO path: groups (drivers/vfio/group.c), the container
// (drivers/vfio/container.c) and the type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c).
extension KernelState {
    // MARK: Groups

    /// Whether every function of the group is bound to no driver or to one that manages DMA
    /// itself (`iommu_group_claim_dma_owner`): the rule the VFIO layer applies too.
    func groupIsViable(_ number: Int) -> Bool {
        groupMembers(number).allSatisfy { GroupViability.allows(driver: configuration.pciDevices[$0].driver) }
    }

    mutating func vfioGroupIoctl(_ number: Int, request: UInt, argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        guard let operation = IOMMUOperation(request: request, family: .vfioGroup) else { throw .inappropriateIOCTLForDevice }
        guard var group = vfio.groups[number] else { throw .badFileDescriptor }
        switch operation {
        case .vfioGroupGetStatus:
            guard let argument = unsafe argument else { throw .badAddress }
            var status = unsafe argument.loadUnaligned(as: vfio_group_status.self)
            guard status.argsz >= 8 else { throw .invalidArgument }
            if group.container != nil {
                status.flags = VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET
            } else {
                status.flags = groupIsViable(number) ? VFIO_GROUP_FLAGS_VIABLE : 0
            }
            unsafe argument.storeBytes(of: status, as: vfio_group_status.self)
        case .vfioGroupSetContainer:
            guard let argument = unsafe argument else { throw .badAddress }
            let fd = unsafe argument.loadUnaligned(as: Int32.self)
            guard let descriptor = descriptors[fd] else { throw .badFileDescriptor }
            guard group.container == nil else { throw .invalidArgument }
            // Neither a container nor an iommufd: "the FD passed is not recognized".
            guard case .vfioContainer(let containerID) = descriptor else { throw Errno(rawValue: EBADFD) }
            // iommu_group_claim_dma_owner fails while a kernel driver owns a member.
            guard groupIsViable(number) else { throw .notPermitted }
            group.container = containerID
            vfio.containers[containerID]!.groups.insert(number)
            vfio.groups[number] = group
        case .vfioGroupUnsetContainer:
            guard let containerID = group.container else { throw .invalidArgument }
            if vfio.deviceFiles.values.contains(where: { $0.group == number }) { throw .resourceBusy }
            leaveContainer(number, containerID)
        case .vfioGroupGetDeviceFD:
            guard let argument = unsafe argument else { throw .badAddress }
            let name = unsafe readCString(argument, limit: 256)
            guard let containerID = group.container, vfio.containers[containerID]?.iommuSet == true else { throw .invalidArgument }
            let parts = name.split(separator: " ", maxSplits: 1)
            guard let address = parts.first,
                  let index = groupMembers(number).first(where: { configuration.pciDevices[$0].address == address })
            else { throw .operationNotSupportedByDevice }
            // A VF token for a function that is neither a PF nor a VF.
            if parts.count > 1 { throw .invalidArgument }
            let fileID = makeDeviceFile(DeviceFile(deviceIndex: index, group: number))
            let fd = lowestFreeDescriptor()
            descriptors[fd] = .vfioDevice(fileID: fileID)
            return fd
        default:
            throw .inappropriateIOCTLForDevice
        }
        return 0
    }

    /// A group leaves its container; the last group out unsets the IOMMU, which drops
    /// every mapping.
    mutating func leaveContainer(_ number: Int, _ containerID: Int) {
        vfio.groups[number]?.container = nil
        guard var container = vfio.containers[containerID] else { return }
        container.groups.remove(number)
        if container.groups.isEmpty {
            for mapping in container.mappings.values { uncharge(mapping.chargedPages) }
            container.mappings.removeAll()
            container.iommuSet = false
        }
        vfio.containers[containerID] = container
        collectContainer(containerID)
    }

    /// A container whose descriptor is closed lives as long as a group holds it.
    mutating func collectContainer(_ containerID: Int) {
        guard let container = vfio.containers[containerID], container.groups.isEmpty else { return }
        let open = descriptors.values.contains { if case .vfioContainer(containerID) = $0 { true } else { false } }
        if !open { vfio.containers[containerID] = nil }
    }

    /// Type1 charges `mm->locked_vm` (vfio_lock_acct), a budget of its own beside iommufd's
    /// per-user one.
    private mutating func uncharge(_ pages: UInt64) {
        mmLockedPages -= min(mmLockedPages, pages)
    }

    private func readCString(_ pointer: UnsafeMutableRawPointer, limit: Int) -> String {
        var bytes: [UInt8] = []
        for offset in 0..<limit {
            let byte = unsafe pointer.load(fromByteOffset: offset, as: UInt8.self)
            if byte == 0 { break }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: Container

    mutating func vfioContainerIoctl(_ containerID: Int, request: UInt, argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        guard let operation = IOMMUOperation(request: request, family: .vfioContainer) else { throw .inappropriateIOCTLForDevice }
        guard var container = vfio.containers[containerID] else { throw .badFileDescriptor }
        let value = UInt(bitPattern: argument)
        switch operation {
        case .vfioGetAPIVersion:
            return Int32(VFIO_API_VERSION)
        case .vfioCheckExtension:
            return [VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR].contains(value) ? 1 : 0
        case .vfioSetIOMMU:  // only with a group in, and only once
            guard !container.groups.isEmpty, !container.iommuSet else { throw .invalidArgument }
            guard value == VFIO_TYPE1v2_IOMMU else { throw .operationNotSupportedByDevice }
            container.iommuSet = true
            // vfio_iommu_type1_open (vfio_iommu_type1.c:2646): the container takes the
            // module's dma_entry_limit now; a later change of the parameter does not reach it.
            container.entryLimit = configuration.type1MappingLimit
            vfio.containers[containerID] = container
            return 0
        default:
            break
        }
        // Everything else goes to the IOMMU driver; without one the container says EINVAL.
        guard container.iommuSet else { throw .invalidArgument }
        guard let argument = unsafe argument else { throw .badAddress }
        switch operation {
        case .vfioIOMMUGetInfo: unsafe try type1Info(container, argument)
        case .vfioIOMMUMapDMA: unsafe try type1Map(&container, argument)
        case .vfioIOMMUUnmapDMA: unsafe try type1Unmap(&container, argument)
        default: throw .inappropriateIOCTLForDevice
        }
        vfio.containers[containerID] = container
        return 0
    }

    /// The valid IOVA ranges: the narrowest aperture of the member functions, minus
    /// their groups' reserved regions (`vfio_iommu_iova_build_caps`).
    func type1Ranges(_ container: ContainerState) -> [ClosedRange<UInt64>] {
        let members = container.groups.flatMap { groupMembers($0) }.map { configuration.pciDevices[$0] }
        let width = members.map(\.addressWidth).min() ?? 48
        let top = width >= 64 ? ulongMax : (UInt64(1) << UInt64(width)) - 1
        let reserved = IntervalSet(members.flatMap(\.reservedRegions))
        return reserved.holes(in: 0...top)
    }

    private func type1Info(_ container: ContainerState, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var info = unsafe argument.loadUnaligned(as: vfio_iommu_type1_info.self)
        guard info.argsz >= 16 else { throw .invalidArgument }
        info.flags = VFIO_IOMMU_INFO_PGSIZES
        info.iova_pgsizes = 0x4020_1000  // 4 KiB | 2 MiB | 1 GiB
        // Capabilities, each 8-byte aligned: IOVA ranges, then the mapping budget.
        let ranges = type1Ranges(container)
        var caps: [UInt8] = []
        let fixed = MemoryLayout<vfio_iommu_type1_info>.size
        func append<T>(_ value: T) { var value = value; unsafe withUnsafeBytes(of: &value) { unsafe caps += $0 } }
        let rangeCapStart = caps.count
        append(vfio_info_cap_header(id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0))
        append(UInt32(ranges.count))
        append(UInt32(0))
        for range in ranges { append(vfio_iova_range(start: range.lowerBound, end: range.upperBound)) }
        let availCapStart = caps.count
        append(vfio_info_cap_header(id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0))
        append(container.entryLimit - UInt32(container.mappings.count))
        append(UInt32(0))
        // Chain the headers: `next` is relative to the start of the whole info struct.
        unsafe caps.withUnsafeMutableBytes { bytes in
            unsafe bytes.storeBytes(of: UInt32(fixed + availCapStart), toByteOffset: rangeCapStart + 4, as: UInt32.self)
        }
        info.flags |= VFIO_IOMMU_INFO_CAPS
        if Int(info.argsz) < fixed + caps.count {
            info.argsz = UInt32(fixed + caps.count)
            info.cap_offset = 0
        } else {
            info.cap_offset = UInt32(fixed)
            unsafe caps.withUnsafeBytes { unsafe (argument + fixed).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        unsafe argument.storeBytes(of: info, as: vfio_iommu_type1_info.self)
    }

    /// `vfio_dma_do_map`, then pinning and accounting (`vfio_pin_map_dma`).
    private mutating func type1Map(_ container: inout ContainerState, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        let map = unsafe argument.loadUnaligned(as: vfio_iommu_type1_dma_map.self)
        let known = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR
        guard map.argsz >= 32, map.flags & ~known == 0 else { throw .invalidArgument }
        guard map.size != 0 else { throw .invalidArgument }
        let (last, overflowIOVA) = map.iova.addingReportingOverflow(map.size - 1)
        let (_, overflowVA) = map.vaddr.addingReportingOverflow(map.size - 1)
        guard !overflowIOVA, !overflowVA else { throw .overflow }
        let readable = map.flags & VFIO_DMA_MAP_FLAG_READ != 0
        let writable = map.flags & VFIO_DMA_MAP_FLAG_WRITE != 0
        // VADDR updates are not modelled: they need a vaddr-invalidated mapping first.
        guard (readable || writable) && map.flags & VFIO_DMA_MAP_FLAG_VADDR == 0 else { throw .invalidArgument }
        guard (map.size | map.iova | map.vaddr) & (pageSize - 1) == 0 else { throw .invalidArgument }
        if container.mappings.values.contains(where: { $0.iova <= last && map.iova <= $0.last }) { throw .fileExists }
        guard container.mappings.count < Int(container.entryLimit) else { throw .noSpace }  // dma_avail (vfio_iommu_type1.c:1745-1747)
        guard type1Ranges(container).contains(where: { $0.lowerBound <= map.iova && last <= $0.upperBound }) else { throw .invalidArgument }
        guard memoryIsMapped(start: map.vaddr, length: map.size, writable: writable) else { throw .badAddress }
        let pages = map.size / pageSize
        var charged: UInt64 = 0
        if !configuration.hasIPCLock {
            let limitPages = configuration.memlockLimit.map { $0 / pageSize } ?? .max
            guard mmLockedPages + pages <= limitPages else { throw .noMemory }
            mmLockedPages += pages
            charged = pages
        }
        container.mappings[map.iova] = Type1Mapping(iova: map.iova, size: map.size, userAddress: map.vaddr,
                                                    readable: readable, writable: writable, chargedPages: charged)
    }

    /// `vfio_dma_do_unmap` with the v2 rule: a range may not cut a mapping.
    private mutating func type1Unmap(_ container: inout ContainerState, _ argument: UnsafeMutableRawPointer) throws(Errno) {
        var unmap = unsafe argument.loadUnaligned(as: vfio_iommu_type1_dma_unmap.self)
        let known = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR
        guard unmap.argsz >= 24, unmap.flags & ~known == 0 else { throw .invalidArgument }
        guard unmap.flags & (VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR) == 0 else { throw .invalidArgument }
        guard unmap.iova & (pageSize - 1) == 0 else { throw .invalidArgument }
        let range: ClosedRange<UInt64>
        if unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
            guard unmap.iova == 0, unmap.size == 0 else { throw .invalidArgument }
            range = 0...ulongMax
        } else {
            guard unmap.size != 0, unmap.size & (pageSize - 1) == 0 else { throw .invalidArgument }
            let (last, overflow) = unmap.iova.addingReportingOverflow(unmap.size - 1)
            guard !overflow else { throw .overflow }
            range = unmap.iova...last
            let cut = container.mappings.values.contains { mapping in
                (mapping.iova < range.lowerBound && range.lowerBound <= mapping.last)
                    || (mapping.iova <= range.upperBound && range.upperBound < mapping.last)
            }
            guard !cut else { throw .invalidArgument }
        }
        var unmapped: UInt64 = 0
        for (iova, mapping) in container.mappings where range.lowerBound <= mapping.iova && mapping.last <= range.upperBound {
            unmapped += mapping.size
            uncharge(mapping.chargedPages)
            container.mappings[iova] = nil
        }
        unmap.size = unmapped
        unsafe argument.storeBytes(of: unmap, as: vfio_iommu_type1_dma_unmap.self)
    }

    // MARK: Device DMA through a container

    /// The user memory a function in a container reaches at `iova`, or `nil` (a fault).
    func type1Translate(_ container: ContainerState, iova: UInt64, length: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        guard length > 0 else { return nil }
        let (last, overflow) = iova.addingReportingOverflow(length - 1)
        guard !overflow, let mapping = container.mappings.values.first(where: { $0.iova <= iova && last <= $0.last }),
              write ? mapping.writable : mapping.readable else { return nil }
        // The pages were pinned at map time and stay pinned (and alive) until the unmap, even
        // after the process unmaps them: the device reaches them regardless.
        let address = mapping.userAddress + (iova - mapping.iova)
        return unsafe UnsafeMutableRawPointer(bitPattern: UInt(address))
    }
}
