import Logging
import CIOMMUFD
public import IOMMUFD

/// A device region (a BAR) mapped into this process, read and written one register
/// at a time. The mapping is undone when the value is consumed or goes out of scope;
/// it cannot be copied, and its address is not handed out, so no pointer into device
/// memory outlives it or escapes the accessors' bounds check.
///
/// **Width.** Each access is one volatile load or store of exactly the width asked
/// for: the compiler neither merges, splits, elides, repeats nor reorders accesses to
/// the region among themselves. An access outside the region or not aligned to its
/// width stops the program (`precondition`).
///
/// **Byte order.** PCI registers are little-endian, and so are the values here: a
/// write stores `value.littleEndian` and a read returns `UInt32(littleEndian:)` of what
/// it loaded, so `write32(0x1234_5678, at: r)` puts `78 56 34 12` at `r` on any host.
/// On x86-64 and little-endian aarch64 the conversion is no instruction; it is written
/// out so the contract is explicit.
///
/// **Ordering.** Plain accessors order nothing against ordinary memory: a driver's
/// stores to a DMA buffer may still be in flight when a plain `write32` reaches the
/// device, and loads from a DMA buffer may be satisfied before a plain `read32`. When
/// the device must see memory written before a register write, use
/// ``writeDoorbell32(_:at:)``; when a register read says the device has written memory
/// that is read next, use ``readCompletion32(at:)``; ``MemoryBarrier`` has the rest.
///
/// **Models.** On a model of the system (MockKernel) the region is ordinary memory;
/// the mapping then carries the model's `MMIOObserver`, told of each access after it
/// is made, so a mock device can react to a doorbell. On `LinuxSystem` there is none
/// and an access is the volatile load or store plus one never-taken branch.
// Sendable: the mapping has one owner (it cannot be copied), so moving it to another thread
// moves the only handle; the raw base pointer is what keeps the compiler from proving it.
// @safe: every access is bounds- and alignment-checked against `length` before it touches
// `base`, and the region cannot outlive its mapping (it owns it).
@safe
public struct MMIORegion: ~Copyable, @unchecked Sendable {
    /// The first byte of the mapping. Not public: drivers go through the accessors.
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Its length in bytes.
    public let length: Int
    /// The model's observer; `nil` on real hardware.
    @usableFromInline let observer: MMIOObserver?
    private let system: any SystemInterface
    /// The device the region belongs to, kept open while the region exists: its BARs stay
    /// its own (no other process can claim it, bus mastering is not cleared under a driver
    /// still writing registers) until the mapping is gone.
    private let device: VFIODevice

    init(base: UnsafeMutableRawPointer, length: Int, observer: MMIOObserver?, device: VFIODevice) {
        unsafe self.base = unsafe base
        self.length = length
        unsafe self.observer = unsafe observer
        self.system = device.system
        self.device = device
    }

    /// The device whose BAR this is.
    public var owner: VFIODevice { device }

    deinit {
        do { unsafe try system.munmap(base, length: length) } catch {
            device.logger.debug("unmapping a BAR failed", metadata: ["vfio.device": "\(device.path)", "error": "\(error)"])
        }
    }

    /// Whether a model of the system watches the accesses (a MockKernel device); never
    /// on `LinuxSystem`.
    public var isObserved: Bool { unsafe observer != nil }

    @inlinable @inline(__always)
    func check(_ offset: UInt64, _ width: UInt64) {
        precondition(offset % width == 0 && offset < UInt64(truncatingIfNeeded: length) && UInt64(truncatingIfNeeded: length) - offset >= width,
                     "MMIO access outside the region or misaligned")
    }

    // MARK: Reads

    /// Reads the 8-bit register at `offset`.
    @inlinable
    public func read8(at offset: UInt64) -> UInt8 {
        check(offset, 1)
        return unsafe UInt8(truncatingIfNeeded: observed(read: UInt64(ciommufd_mmio_read8(base, offset)), offset, 1))
    }

    /// Reads the little-endian 16-bit register at `offset` (aligned to 2).
    @inlinable
    public func read16(at offset: UInt64) -> UInt16 {
        check(offset, 2)
        return unsafe UInt16(truncatingIfNeeded: observed(read: UInt64(UInt16(littleEndian: ciommufd_mmio_read16(base, offset))), offset, 2))
    }

    /// Reads the little-endian 32-bit register at `offset` (aligned to 4).
    @inlinable
    public func read32(at offset: UInt64) -> UInt32 {
        check(offset, 4)
        return unsafe UInt32(truncatingIfNeeded: observed(read: UInt64(UInt32(littleEndian: ciommufd_mmio_read32(base, offset))), offset, 4))
    }

    /// Reads the little-endian 64-bit register at `offset` (aligned to 8) in one access.
    @inlinable
    public func read64(at offset: UInt64) -> UInt64 {
        check(offset, 8)
        return unsafe observed(read: UInt64(littleEndian: ciommufd_mmio_read64(base, offset)), offset, 8)
    }

    // MARK: Writes

    /// Writes the 8-bit register at `offset`.
    @inlinable
    public func write8(_ value: UInt8, at offset: UInt64) {
        check(offset, 1)
        unsafe ciommufd_mmio_write8(base, offset, value)
        observed(write: UInt64(value), offset, 1)
    }

    /// Writes `value` little-endian to the 16-bit register at `offset` (aligned to 2).
    @inlinable
    public func write16(_ value: UInt16, at offset: UInt64) {
        check(offset, 2)
        unsafe ciommufd_mmio_write16(base, offset, value.littleEndian)
        observed(write: UInt64(value), offset, 2)
    }

    /// Writes `value` little-endian to the 32-bit register at `offset` (aligned to 4).
    @inlinable
    public func write32(_ value: UInt32, at offset: UInt64) {
        check(offset, 4)
        unsafe ciommufd_mmio_write32(base, offset, value.littleEndian)
        observed(write: UInt64(value), offset, 4)
    }

    /// Writes `value` little-endian to the 64-bit register at `offset` (aligned to 8)
    /// in one access.
    @inlinable
    public func write64(_ value: UInt64, at offset: UInt64) {
        check(offset, 8)
        unsafe ciommufd_mmio_write64(base, offset, value.littleEndian)
        observed(write: value, offset, 8)
    }

    /// The order a 64-bit register's halves are written in by ``write64(_:at:halves:)``.
    public enum HalfOrder: Sendable {
        /// The low 32 bits first (`lo_hi_writeq`): NVMe's ASQ/ACQ, most 64-bit base registers.
        case lowFirst
        /// The high 32 bits first (`hi_lo_writeq`): registers that act on the low half's write.
        case highFirst
    }

    /// Writes `value` to the 64-bit register at `offset` as two 32-bit accesses in `halves`
    /// order, for devices (or buses) that take no 64-bit access; each half is one aligned
    /// 32-bit store, so the device sees them in program order.
    @inlinable
    public func write64(_ value: UInt64, at offset: UInt64, halves: HalfOrder) {
        check(offset, 8)
        let low = UInt32(truncatingIfNeeded: value), high = UInt32(truncatingIfNeeded: value >> 32)
        switch halves {
        case .lowFirst:
            write32(low, at: offset)
            write32(high, at: offset + 4)
        case .highFirst:
            write32(high, at: offset + 4)
            write32(low, at: offset)
        }
    }

    // MARK: The model's hook

    /// Tells the observer, if any, of a load that returned `value`, and returns what
    /// the driver reads. Without an observer: one compare and branch, not taken.
    @inlinable @inline(__always)
    func observed(read value: UInt64, _ offset: UInt64, _ width: Int) -> UInt64 {
        guard let observer = unsafe observer else { return value }
        return unsafe Self.report(observer, read: value, offset, width)
    }

    /// Tells the observer, if any, of a store of `value`.
    @inlinable @inline(__always)
    func observed(write value: UInt64, _ offset: UInt64, _ width: Int) {
        if let observer = unsafe observer { unsafe Self.report(observer, write: value, offset, width) }
    }

    // Out of line, so a real-hardware access carries only the branch.
    @usableFromInline @inline(never)
    static func report(_ observer: MMIOObserver, read value: UInt64, _ offset: UInt64, _ width: Int) -> UInt64 {
        unsafe observer.didRead(observer.context, observer.region, offset, width, value)
    }

    @usableFromInline @inline(never)
    static func report(_ observer: MMIOObserver, write value: UInt64, _ offset: UInt64, _ width: Int) {
        unsafe observer.didWrite(observer.context, observer.region, offset, width, value)
    }
}
