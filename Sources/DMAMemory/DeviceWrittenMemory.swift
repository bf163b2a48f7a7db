import CIOMMUFD

/// Loads of memory a device writes by DMA: an NVMe completion queue entry's phase bit, a
/// NIC descriptor's done bit. Each is one volatile little-endian load of its width, which
/// the compiler can neither fold nor hoist out of a polling loop, followed by
/// `dma_rmb` (a compiler barrier on x86), so that the rest of the entry is read only after
/// the status said it is complete (as Linux's drivers do between the phase check and the
/// entry's other fields).
public enum DeviceWrittenMemory {
    /// The 16-bit little-endian value the device wrote at `address` (2-byte aligned).
    @inlinable
    public static func load16(_ address: UnsafeRawPointer) -> UInt16 {
        let value = unsafe UInt16(littleEndian: ciommufd_mmio_read16(address, 0))
        ciommufd_dma_rmb()
        return value
    }

    /// The 32-bit little-endian value the device wrote at `address` (4-byte aligned).
    @inlinable
    public static func load32(_ address: UnsafeRawPointer) -> UInt32 {
        let value = unsafe UInt32(littleEndian: ciommufd_mmio_read32(address, 0))
        ciommufd_dma_rmb()
        return value
    }

    /// The 64-bit little-endian value the device wrote at `address` (8-byte aligned).
    @inlinable
    public static func load64(_ address: UnsafeRawPointer) -> UInt64 {
        let value = unsafe UInt64(littleEndian: ciommufd_mmio_read64(address, 0))
        ciommufd_dma_rmb()
        return value
    }
}
