import Logging
public import IOMMUFD
public import VFIO

/// A DMA region: pinned memory mapped once at one IOVA. The unit pools carve buffers from.
///
/// Exactly one owner. `deinit` removes the IOMMU mapping (and quarantines the IOVA), and
/// only then does the memory's own `deinit` unmap it from the process: unmap before
/// munmap follows from the layout. Quiesce the devices that use it first.
// Sendable for the same reason as PinnedMemory: one owner; its manager is Sendable.
public struct DMARegion: ~Copyable, @unchecked Sendable {
    /// The manager that mapped it; kept alive by the region.
    public let manager: DMAMemoryManager
    /// The memory.
    public let memory: PinnedMemory
    /// The IOMMU mapping.
    public let mapping: DMAMapping
    /// Whether it was mapped by file (`IOMMU_IOAS_MAP_FILE`) rather than by address.
    public let mappedByFile: Bool
    private var isMapped = true

    init(manager: DMAMemoryManager, memory: consuming PinnedMemory, mapping: DMAMapping, mappedByFile: Bool) {
        self.manager = manager
        self.memory = memory
        self.mapping = mapping
        self.mappedByFile = mappedByFile
    }

    /// The first byte.
    public var address: UnsafeMutableRawPointer { unsafe memory.address }
    /// The first IOVA.
    public var iova: IOVA { mapping.iova }
    /// The length in bytes (whole pages).
    public var length: Int { memory.length }

    /// The IOVA of `address` (which must lie in the region). O(1).
    @inlinable
    public func iova(of address: UnsafeRawPointer) -> IOVA {
        let offset = unsafe UInt64(UInt(bitPattern: address) &- UInt(bitPattern: self.address))
        precondition(offset < UInt64(length), "the address is not in this region")
        return IOVA(mapping.iova.rawValue &+ offset)
    }

    /// The address of `iova` (which must lie in the region). O(1).
    @inlinable
    public func address(of iova: IOVA) -> UnsafeMutableRawPointer {
        let offset = iova.rawValue &- mapping.iova.rawValue
        precondition(offset < UInt64(length), "the IOVA is not in this region")
        return unsafe address + Int(offset)
    }

    /// Removes the mapping now and reports the kernel's error; the memory is unmapped
    /// from the process afterwards either way. When the unmap fails the IOVA is not reused.
    public consuming func release() throws(DMAMemoryError) {
        isMapped = false
        unsafe try manager.unmap(mapping, address: memory.address)
    }

    deinit {
        if isMapped {
            do { unsafe try manager.unmap(mapping, address: memory.address) } catch {
                manager.logger.debug("removing a region's IOMMU mapping failed", metadata: ["dma.iova": "\(mapping.iova)", "error": "\(error)"])
            }
        }
    }
}
