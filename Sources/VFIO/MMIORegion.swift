import CIOMMUFD
import IOMMUFD

/// A device region (a BAR) mapped into this process. Accesses are volatile and of
/// exactly the width asked for. The mapping is undone when the value is consumed or
/// goes out of scope; it cannot be copied, so no stale pointer outlives it.
public struct MMIORegion: ~Copyable {
    /// The first byte of the mapping.
    public let base: UnsafeMutableRawPointer
    /// Its length in bytes.
    public let length: Int
    private let system: any SystemInterface

    init(base: UnsafeMutableRawPointer, length: Int, system: any SystemInterface) {
        self.base = base
        self.length = length
        self.system = system
    }

    deinit {
        try? system.munmap(base, length: length)
    }

    @inline(__always)
    private func check(_ offset: UInt64, _ width: Int) {
        precondition(offset % UInt64(width) == 0 && offset + UInt64(width) <= UInt64(length), "MMIO access outside the region or misaligned")
    }

    public func read8(at offset: UInt64) -> UInt8 { check(offset, 1); return ciommufd_mmio_read8(base, offset) }
    public func read16(at offset: UInt64) -> UInt16 { check(offset, 2); return ciommufd_mmio_read16(base, offset) }
    public func read32(at offset: UInt64) -> UInt32 { check(offset, 4); return ciommufd_mmio_read32(base, offset) }
    public func read64(at offset: UInt64) -> UInt64 { check(offset, 8); return ciommufd_mmio_read64(base, offset) }
    public func write8(_ value: UInt8, at offset: UInt64) { check(offset, 1); ciommufd_mmio_write8(base, offset, value) }
    public func write16(_ value: UInt16, at offset: UInt64) { check(offset, 2); ciommufd_mmio_write16(base, offset, value) }
    public func write32(_ value: UInt32, at offset: UInt64) { check(offset, 4); ciommufd_mmio_write32(base, offset, value) }
    public func write64(_ value: UInt64, at offset: UInt64) { check(offset, 8); ciommufd_mmio_write64(base, offset, value) }
}
