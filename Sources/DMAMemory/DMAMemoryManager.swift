public import Logging
public import IOMMUFD
public import VFIO
import SystemPackage

/// The pinned-memory manager of one DMA address space: it makes regions (backing
/// memory + an IOVA + one IOMMU mapping), keeps the IOVA allocator, and translates
/// between virtual addresses and IOVAs.
///
/// Create it after the devices are attached: the usable IOVA ranges (reserved regions
/// such as the MSI window excluded) are read once, here.
///
/// Freed IOVAs stay quarantined until ``devicesAreQuiescent()``: a device that still
/// holds an old IOVA can never write into memory that was handed out again.
// @safe: its raw storage (the locked allocator) is used only behind this interface.
@safe
public final class DMAMemoryManager: Sendable {
    /// Where the regions are mapped.
    public let addressSpace: DMAAddressSpace
    /// The system the memory comes from.
    public let system: any SystemInterface
    /// Where the manager, its regions and their memory log (teardown failures among them):
    /// the address space's logger.
    public let logger: Logger

    struct State {
        var allocator: IOVAAllocator
        /// Live regions sorted by virtual address, and the same sorted by IOVA.
        var byAddress: [RegionEntry] = []
        var byIOVA: [RegionEntry] = []
        /// Bytes this manager has mapped (pinned once a device domain is attached).
        var mappedBytes: UInt64 = 0
    }

    struct RegionEntry: Sendable {
        var address: UInt
        var iova: UInt64
        var length: UInt64
    }

    let state: LockedState<State>

    /// A manager over `addressSpace`; `dmaMask` limits IOVAs for devices that cannot
    /// address 64 bits (`0xffff_ffff` for a 32-bit device). Memory comes from the system
    /// the address space talks to (`DMAAddressSpace.system`), so a manager over a mock
    /// IOAS never maps real memory.
    ///
    /// - Throws: the kernel's error reading the IOVA ranges.
    public init(addressSpace: DMAAddressSpace, dmaMask: UInt64 = .max) throws(DMAMemoryError) {
        let ranges: IOVARanges
        do { ranges = try addressSpace.iovaRanges() } catch { throw .kernel(error) }
        self.addressSpace = addressSpace
        self.system = addressSpace.system
        self.logger = addressSpace.logger
        unsafe state = unsafe LockedState(State(allocator: IOVAAllocator(ranges: ranges, dmaMask: dmaMask)))
    }

    /// Makes a region of at least `length` bytes: memory from `backing` placed by
    /// `placement` and faulted in (see ``PinnedMemory``), an IOVA from the allocator, and
    /// one mapping: `IOMMU_IOAS_MAP_FILE` for memfd and hugetlbfs memory on iommufd,
    /// `IOMMU_IOAS_MAP` (or type1's `VFIO_IOMMU_MAP_DMA`) otherwise.
    ///
    /// - Throws: ``DMAMemoryError/memoryLockLimit(needed:limit:maximum:)`` before anything is
    ///   allocated when `RLIMIT_MEMLOCK` cannot cover the region, the backing errors, an
    ///   exhausted IOVA space, or the kernel's refusal to map. Nothing is left behind.
    public func makeRegion(
        length: Int, backing: BackingPolicy, placement: NUMAPlacement = .anyNode, access: MapAccess = .readWrite,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil
    ) throws(DMAMemoryError) -> DMARegion {
        try checkMemoryLockLimit(adding: UInt64(backing.stores.map { $0.pageSize.roundUp(length) }.min() ?? length))
        let memory = try PinnedMemory(length: length, backing: backing, placement: placement, system: system, logger: logger, progress: progress)
        let size = UInt64(memory.length)
        let range: IOVARange
        do {
            range = unsafe try state.withLock { (state) throws(IOVAAllocator.AllocationError) -> IOVARange in
                try state.allocator.allocate(size, alignment: state.allocator.naturalAlignment(for: max(size, UInt64(memory.pageSize.bytes))))
            }
        } catch { throw .iovaSpace(error) }
        let mapping: DMAMapping
        do {
            mapping = try map(memory, at: range.start, access: access)
        } catch {
            unsafe state.withLock { $0.allocator.returnUnused(range) }
            throw error
        }
        let entry = unsafe RegionEntry(address: UInt(bitPattern: memory.address), iova: range.start.rawValue, length: size)
        unsafe state.withLock { state in
            state.mappedBytes += size
            let addressIndex = state.byAddress.firstIndex { $0.address > entry.address } ?? state.byAddress.endIndex
            state.byAddress.insert(entry, at: addressIndex)
            let iovaIndex = state.byIOVA.firstIndex { $0.iova > entry.iova } ?? state.byIOVA.endIndex
            state.byIOVA.insert(entry, at: iovaIndex)
        }
        let mappedByFile = memory.store.isFile && addressSpace.path == .iommufdCdev
        return DMARegion(manager: self, memory: memory, mapping: mapping, mappedByFile: mappedByFile)
    }

    private func map(_ memory: borrowing PinnedMemory, at iova: IOVA, access: MapAccess) throws(DMAMemoryError) -> DMAMapping {
        do {
            if case .iommufd(let ioas) = addressSpace, let file = memory.fileDescriptor {
                return try ioas.mapFile(fileDescriptor: file, offset: 0, length: UInt64(memory.length), at: iova, access: access)
            }
            return unsafe try addressSpace.map(userAddress: UInt64(UInt(bitPattern: memory.address)), length: UInt64(memory.length), at: iova, access: access)
        } catch {
            if error.errno == .noMemory, let limit = try? system.memoryLockLimit(), let current = limit.current {
                throw unsafe .memoryLockLimit(needed: state.withLock { $0.mappedBytes } + UInt64(memory.length), limit: current, maximum: limit.maximum)
            }
            throw .kernel(error)
        }
    }

    /// Fails early when the memlock limit cannot cover what this manager maps plus `bytes`
    /// (processes with `CAP_IPC_LOCK` are not charged).
    private func checkMemoryLockLimit(adding bytes: UInt64) throws(DMAMemoryError) {
        if ProcessCapabilities(system: system)?.hasIPCLock == true { return }
        guard let limit = try? system.memoryLockLimit(), let current = limit.current else { return }
        let needed = unsafe state.withLock { $0.mappedBytes } + bytes
        if needed > current { throw .memoryLockLimit(needed: needed, limit: current, maximum: limit.maximum) }
    }

    /// Removes a region's mapping and quarantines its IOVA (called by ``DMARegion``).
    func unmap(_ mapping: DMAMapping, address: UnsafeMutableRawPointer) throws(DMAMemoryError) {
        do { try addressSpace.unmap(mapping) } catch { throw .kernel(error) }
        unsafe state.withLock { state in
            // The IOVA is quarantined; it cannot be a double free, the region owned it.
            try? state.allocator.free(mapping.range)
            state.mappedBytes -= mapping.length
            state.byAddress.removeAll { $0.address == UInt(bitPattern: address) }
            state.byIOVA.removeAll { $0.iova == mapping.iova.rawValue }
        }
    }

    /// Declares that no device of this address space can still use a freed IOVA (bus
    /// mastering off, queues drained, or reset): quarantined IOVAs become reusable.
    public func devicesAreQuiescent() {
        unsafe state.withLock { $0.allocator.releaseQuarantine() }
    }

    /// Bytes of IOVA space waiting for ``devicesAreQuiescent()``.
    public var quarantinedBytes: UInt64 { unsafe state.withLock { $0.allocator.quarantinedBytes } }

    /// Bytes mapped through this manager.
    public var mappedBytes: UInt64 { unsafe state.withLock { $0.mappedBytes } }

    /// The IOVA of a byte in any live region, or `nil`. O(log n) in the number of regions.
    public func iova(of address: UnsafeRawPointer) -> IOVA? {
        let key = UInt(bitPattern: address)
        return unsafe state.withLock { state -> IOVA? in
            guard let entry = Self.search(state.byAddress, key: UInt64(key), start: { UInt64($0.address) }) else { return nil }
            return IOVA(entry.iova + UInt64(key - entry.address))
        }
    }

    /// The virtual address of an IOVA in any live region, or `nil`. O(log n).
    public func address(of iova: IOVA) -> UnsafeMutableRawPointer? {
        unsafe state.withLock { state -> UnsafeMutableRawPointer? in
            guard let entry = Self.search(state.byIOVA, key: iova.rawValue, start: { $0.iova }) else { return nil }
            return unsafe UnsafeMutableRawPointer(bitPattern: entry.address + UInt(iova.rawValue - entry.iova))
        }
    }

    /// The entry whose `[start, start + length)` holds `key`, by binary search.
    static func search(_ entries: [RegionEntry], key: UInt64, start: (RegionEntry) -> UInt64) -> RegionEntry? {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if start(entries[middle]) <= key { low = middle + 1 } else { high = middle }
        }
        guard low > 0 else { return nil }
        let candidate = entries[low - 1]
        return key - start(candidate) < candidate.length ? candidate : nil
    }
}
