import CIOMMUFD

/// CPU memory barriers for a driver that shares memory with its device, with the
/// kernel's names and meanings (Documentation/memory-barriers.txt) and libvfn's
/// instructions (`include/vfn/support/barrier.h`).
///
/// Most drivers need only the two accesses that include the right barrier,
/// ``MMIORegion/writeDoorbell32(_:at:)`` and ``MMIORegion/readCompletion32(at:)``, plus
/// ``dmaRead()`` and ``dmaWrite()`` around descriptors in DMA memory. Every barrier is
/// also a compiler barrier: no load or store is moved across it.
///
/// | Barrier | kernel | x86-64 | aarch64 |
/// |---|---|---|---|
/// | ``full()`` | `mb` | `mfence` | `dsb sy` |
/// | ``write()`` | `wmb` | `sfence` | `dsb st` |
/// | ``read()`` | `rmb` | `lfence` | `dsb ld` |
/// | ``dmaWrite()`` | `dma_wmb` | none (TSO) | `dmb oshst` |
/// | ``dmaRead()`` | `dma_rmb` | none (TSO) | `dmb oshld` |
public enum MemoryBarrier {
    /// All loads and stores before it, to memory and to BARs, complete before any
    /// after it: for a store that must be seen before a later load (libvfn's shadow
    /// doorbell store before its event-index load). `mb()`.
    @inlinable @inline(__always)
    public static func full() { ciommufd_mb() }

    /// Stores before it, to memory and to BARs, are visible to the device before
    /// stores after it: the barrier before a doorbell that makes the device read
    /// memory (``MMIORegion/writeDoorbell32(_:at:)`` includes it). `wmb()`.
    @inlinable @inline(__always)
    public static func write() { ciommufd_wmb() }

    /// Loads before it, from memory and from BARs, complete before loads after it:
    /// the barrier after a status register says a buffer is ready and before the
    /// buffer is read (``MMIORegion/readCompletion32(at:)`` includes it). `rmb()`.
    @inlinable @inline(__always)
    public static func read() { ciommufd_rmb() }

    /// Orders stores to coherent DMA memory among themselves as the device sees them:
    /// write a descriptor's body, `dmaWrite()`, then the bit that gives it to the
    /// device. Not enough before an MMIO doorbell (use ``write()``). `dma_wmb()`.
    @inlinable @inline(__always)
    public static func dmaWrite() { ciommufd_dma_wmb() }

    /// Orders loads from coherent DMA memory among themselves: load a completion's
    /// phase or done bit, `dmaRead()`, then the rest of the entry (libvfn's
    /// `nvme_cq_get_cqe`). `dma_rmb()`.
    @inlinable @inline(__always)
    public static func dmaRead() { ciommufd_dma_rmb() }
}
