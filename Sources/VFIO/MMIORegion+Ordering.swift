import CIOMMUFD

// The two accesses that hand memory between the driver and the device. Which one to
// use is decided by the direction the *memory* goes, not the register:
//
//   driver wrote DMA memory, now tells the device   -> writeDoorbell32/64
//       (an NVMe submission queue tail, an e1000e TDT/RDT, edu's DMA command)
//   device says (in a register) it wrote DMA memory -> readCompletion32/64
//       (a DMA-done status bit, an interrupt cause register read before the buffers)
//
// When the completion is itself in DMA memory (an NVMe CQE's phase bit, an e1000e
// descriptor's DD bit) no register is read: load the flag, then
// MemoryBarrier.dmaRead(), then the rest of the entry.
extension MMIORegion {
    /// Writes a doorbell: a write barrier (``MemoryBarrier/write()``, `wmb`), then the
    /// little-endian 32-bit store at `offset`, as libvfn's `nvme_sq_update_tail` does.
    ///
    /// Guarantees that every store this thread made before the call, to DMA memory
    /// (descriptors, queue entries, buffers) and to this or any other BAR, is visible
    /// to the device before the device sees the doorbell. Use it for the register
    /// that tells the device to go and read memory the driver just wrote. It does not
    /// wait for the device, and does not order later accesses after the doorbell.
    ///
    /// Costs: `sfence` on x86-64, `dsb st` on aarch64, before the store. For registers
    /// that do not publish memory (configuration, interrupt masks) use ``write32(_:at:)``.
    @inlinable
    public func writeDoorbell32(_ value: UInt32, at offset: UInt64) {
        check(offset, 4)
        ciommufd_wmb()
        unsafe ciommufd_mmio_write32(base, offset, value.littleEndian)
        observed(write: UInt64(value), offset, 4)
    }

    /// Writes a 64-bit doorbell in one access, after a write barrier; the same
    /// guarantee as ``writeDoorbell32(_:at:)``.
    @inlinable
    public func writeDoorbell64(_ value: UInt64, at offset: UInt64) {
        check(offset, 8)
        ciommufd_wmb()
        unsafe ciommufd_mmio_write64(base, offset, value.littleEndian)
        observed(write: value, offset, 8)
    }

    /// Reads a completion or status register: the little-endian 32-bit load at
    /// `offset`, then a read barrier (``MemoryBarrier/read()``, `rmb`), as Linux's
    /// `readl` is followed by its I/O read barrier.
    ///
    /// Guarantees that every load this thread makes after the call, from DMA memory
    /// and from any BAR, happens after this register was read: when the register says
    /// the device has finished writing a buffer, reads of that buffer see what the
    /// device wrote, not values the CPU loaded early. It does not order earlier stores.
    ///
    /// Costs: `lfence` on x86-64 (uncached BAR reads are already ordered there; the
    /// fence keeps write-combining mappings right and is small next to the read's trip
    /// to the device), `dsb ld` on aarch64, after the load.
    @inlinable
    public func readCompletion32(at offset: UInt64) -> UInt32 {
        let value = read32(at: offset)
        ciommufd_rmb()
        return value
    }

    /// Reads a 64-bit completion or status register in one access, then a read
    /// barrier; the same guarantee as ``readCompletion32(at:)``.
    @inlinable
    public func readCompletion64(at offset: UInt64) -> UInt64 {
        let value = read64(at: offset)
        ciommufd_rmb()
        return value
    }
}
