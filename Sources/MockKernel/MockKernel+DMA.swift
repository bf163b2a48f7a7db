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

