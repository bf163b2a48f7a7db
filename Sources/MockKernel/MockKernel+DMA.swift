import CIOMMUFD
import IOMMUFDSystem
import SystemPackage

extension MockKernel {
    /// Fake device DMA: the real memory behind `[iova, iova + length)` of IOAS `ioas`
    /// in the context open on descriptor `iommufd`, as a device attached to that IOAS would
    /// reach it. `nil` when the IOAS has no device domain, the range is not mapped as one
    /// area, or the mapping does not allow the access (`write` for device writes).
    ///
    /// Safety: the pointer is valid only while the mapping exists and its memory stays mapped.
    public func translate(iommufd: Int32, ioas: UInt32, iova: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
        unsafe state.withLock { state in
            guard case .iommufd(let contextID)? = state.descriptors[iommufd],
                  let table = state.contexts[contextID]?.ioas(ioas) else { return nil }
            return unsafe state.translate(contextID: contextID, table: table, iova: iova, length: UInt64(length), write: write)
        }
    }

    /// Fake device DMA that copies `bytes` into IO memory; `false` when the device would fault.
    public func deviceWrite(iommufd: Int32, ioas: UInt32, iova: UInt64, bytes: [UInt8]) -> Bool {
        guard let target = unsafe translate(iommufd: iommufd, ioas: ioas, iova: iova, length: bytes.count, write: true) else { return false }
        unsafe bytes.withUnsafeBytes { unsafe target.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return true
    }

    /// Fake device DMA that reads `length` bytes of IO memory; `nil` when the device would fault.
    public func deviceRead(iommufd: Int32, ioas: UInt32, iova: UInt64, length: Int) -> [UInt8]? {
        guard let source = unsafe translate(iommufd: iommufd, ioas: ioas, iova: iova, length: length, write: false) else { return nil }
        return unsafe Array(UnsafeRawBufferPointer(start: source, count: length))
    }
}

/// How a function's fake DMA went.
public enum FunctionDMAOutcome: Equatable, Sendable {
    /// The bytes moved.
    case done
    /// The IOMMU refused the access. `queued`: a page request went to the fault queue of
    /// the function's HWPT (the device waits for the answer, then retries); otherwise the
    /// access failed for good.
    case faulted(queued: Bool)
}

extension MockKernel {
    /// Fake DMA by the PCI function at `address` through the page table its bound cdev is
    /// attached to: writes `bytes` at `iova`. An IOVA the table does not map (or maps
    /// read-only) faults; when the function reports page requests
    /// (``PCIDevice/supportsPageRequests``) and its HWPT has a fault queue, one page request
    /// (a group of one record, `LAST_PAGE`, the page's address, write access) is queued for
    /// the fault queue's reader, as the IOMMU's PRI path does (io-pgfault.c:214-283,
    /// eventq.c:481-498).
    public func functionWrite(_ address: String, iova: UInt64, bytes: [UInt8]) -> FunctionDMAOutcome {
        unsafe functionDMA(address, iova: iova, count: bytes.count, write: true) { target in
            unsafe bytes.withUnsafeBytes { unsafe target.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }

    /// Fake DMA by the PCI function at `address` that reads `count` bytes at `iova` into
    /// `into` (as ``functionWrite(_:iova:bytes:)``, with read access asked for).
    public func functionRead(_ address: String, iova: UInt64, count: Int, into bytes: inout [UInt8]) -> FunctionDMAOutcome {
        var read: [UInt8] = []
        let outcome = unsafe functionDMA(address, iova: iova, count: count, write: false) { source in
            read = unsafe Array(UnsafeRawBufferPointer(start: source, count: count))
        }
        if outcome == .done { bytes = read }
        return outcome
    }

    private func functionDMA(_ address: String, iova: UInt64, count: Int, write: Bool,
                             _ access: (UnsafeMutableRawPointer) -> Void) -> FunctionDMAOutcome {
        let found: (UnsafeMutableRawPointer?, Bool) = unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }),
                  let file = state.vfio.deviceFiles.values.first(where: { $0.deviceIndex == index && $0.boundDeviceID != nil }),
                  let contextID = file.boundContext, let deviceID = file.boundDeviceID,
                  case .device(let device)? = state.contexts[contextID]?.objects[deviceID],
                  let hwptID = device.attachedHWPT,
                  let ioasID = state.contexts[contextID]!.ioasID(ofHWPT: hwptID),
                  let table = state.contexts[contextID]!.ioas(ioasID) else { return (nil, false) }
            if let target = unsafe state.translate(contextID: contextID, table: table, iova: iova, length: UInt64(count), write: write) {
                return (unsafe target, false)
            }
            guard device.supportsPageRequests, let faultID = state.contexts[contextID]!.faultID(ofHWPT: hwptID),
                  case .fault(var queue)? = state.contexts[contextID]!.objects[faultID] else { return (nil, false) }
            var record = iommu_hwpt_pgfault()
            record.flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE
            record.dev_id = deviceID
            record.grpid = UInt32(truncatingIfNeeded: queue.deliver.count + queue.responses.count + 1)
            record.perm = write ? IOMMU_PGFAULT_PERM_WRITE : IOMMU_PGFAULT_PERM_READ
            record.addr = iova & ~(pageSize - 1)
            queue.deliver.append(MockFaultGroup(deviceID: deviceID, handlePASID: 0, record: record))
            state.contexts[contextID]!.objects[faultID] = .fault(queue)
            return (nil, true)
        }
        unsafe state.broadcast()  // a fault queue may have become readable
        guard let target = unsafe found.0 else { return unsafe .faulted(queued: found.1) }
        unsafe access(target)
        return .done
    }
}
