import IOMMUFDSystem
import CIOMMUFD

// The device side of a mock PCI function: what a test plays as the hardware.
extension MockKernel {
    /// The memory a mock function's DMA at `[iova, iova + length)` reaches through
    /// whatever the function is attached to (an iommufd HWPT, or a type1 container), or
    /// `nil` where a real IOMMU would fault. Like hardware, the function cannot master
    /// the bus until Bus Master Enable is set in its command register. When the function
    /// reports page requests (``PCIDevice/supportsPageRequests``) and its HWPT has a fault
    /// queue, a fault also queues a page request there (a group of one record, `LAST_PAGE`,
    /// the page's address and the access asked for), as the IOMMU's PRI path does
    /// (io-pgfault.c:214-283, eventq.c:481-498): the user resolves it, then the device
    /// retries.
    ///
    /// Safety: the pointer is valid only while the mapping exists and its memory stays mapped.
    public func pciDeviceMemory(_ address: String, iova: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
        unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }),
                  let runtime = state.vfio.devices[index],
                  UInt16(runtime.configuration[0x04]) & PCICommand.busMaster != 0 else { return nil }
            // Through a bound cdev: the device object's HWPT and its IOAS.
            for file in state.vfio.deviceFiles.values where file.deviceIndex == index {
                guard let contextID = file.boundContext, let deviceID = file.boundDeviceID,
                      case .device(let bound)? = state.contexts[contextID]?.objects[deviceID],
                      let hwptID = bound.attachedHWPT,
                      let ioasID = state.contexts[contextID]!.ioasID(ofHWPT: hwptID),
                      let table = state.contexts[contextID]?.ioas(ioasID) else { continue }
                let memory = unsafe state.translate(contextID: contextID, table: table, iova: iova, length: UInt64(length), write: write)
                if unsafe memory == nil, bound.supportsPageRequests {
                    state.queuePageRequest(contextID, hwptID: hwptID, deviceID: deviceID, iova: iova, write: write)
                }
                guard case .hwptPaging(var hwpt)? = state.contexts[contextID]?.objects[hwptID] else { return unsafe memory }
                // A write through a domain that tracks dirty pages sets their dirty bits, as
                // the IOMMU sets the second-stage D bit of each page the device writes.
                if write, unsafe memory != nil, hwpt.dirtyTracking, length > 0 {
                    var page = iova & ~(hwpt.ioPageSize - 1)
                    while page <= iova + UInt64(length) - 1 {
                        hwpt.dirtyPages.insert(page)
                        page += hwpt.ioPageSize
                    }
                    state.contexts[contextID]!.objects[hwptID] = .hwptPaging(hwpt)
                }
                return unsafe memory
            }
            // Through the legacy group's container.
            if let group = state.configuration.pciDevices[index].iommuGroup,
               let containerID = state.vfio.groups[group]?.container,
               let container = state.vfio.containers[containerID], container.iommuSet {
                return unsafe state.type1Translate(container, iova: iova, length: UInt64(length), write: write)
            }
            return nil
        }
    }

    /// A mock function writes `bytes` at `iova` by DMA; `false` when the IOMMU would block it.
    public func pciDeviceWrite(_ address: String, iova: UInt64, bytes: [UInt8]) -> Bool {
        guard let target = unsafe pciDeviceMemory(address, iova: iova, length: bytes.count, write: true) else { return false }
        unsafe bytes.withUnsafeBytes { unsafe target.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return true
    }

    /// A mock function reads `length` bytes at `iova` by DMA; `nil` when the IOMMU would block it.
    public func pciDeviceRead(_ address: String, iova: UInt64, length: Int) -> [UInt8]? {
        guard let source = unsafe pciDeviceMemory(address, iova: iova, length: length, write: false) else { return nil }
        return unsafe Array(UnsafeRawBufferPointer(start: source, count: length))
    }

    /// A mock function raises interrupt `vector` of the kind VFIO enabled. MSI and MSI-X
    /// are memory writes, so they need Bus Master Enable; INTx does not. Returns whether
    /// an eventfd was signalled.
    @discardableResult
    public func raiseInterrupt(_ address: String, vector: Int = 0) -> Bool {
        defer { unsafe state.broadcast() }  // wake a thread waiting on the eventfd
        return unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }),
                  let runtime = state.vfio.devices[index], let kind = runtime.interruptKind,
                  runtime.triggers.indices.contains(vector), runtime.triggers[vector] >= 0 else { return false }
            if kind != VFIO_PCI_INTX_IRQ_INDEX && UInt16(runtime.configuration[0x04]) & PCICommand.busMaster == 0 { return false }
            state.signal(runtime.triggers[vector])
            return true
        }
    }

    /// A mock function's BAR as the device sees its own registers (nil before the
    /// function was first opened, or for an absent BAR).
    public func barMemory(_ address: String, bar: Int) -> UnsafeMutableRawBufferPointer? {
        unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }),
                  let runtime = state.vfio.devices[index], runtime.barStorage.indices.contains(bar),
                  let base = unsafe UnsafeMutableRawPointer(bitPattern: runtime.barStorage[bar]) else { return nil }
            return unsafe UnsafeMutableRawBufferPointer(start: base, count: Int(state.configuration.pciDevices[index].barSizes[bar]))
        }
    }

    /// A mock function's live config space (nil before it was first opened).
    public func configurationSpace(_ address: String) -> [UInt8]? {
        unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }) else { return nil }
            return state.vfio.devices[index]?.configuration
        }
    }

    /// Changes the driver a function is bound to (as `driver_override` + `drivers_probe`
    /// would), which decides its group's viability.
    public func setDriver(_ driver: String?, of address: String) {
        unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }) else { return }
            state.configuration.setDriver(driver, ofDeviceAt: index)
        }
    }
}
