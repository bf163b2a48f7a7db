import Synchronization

// QEMU's edu device played on a mock function's registers (hw/misc/edu.c in QEMU 7.2):
// identification, liveness, factorial, interrupt status and its DMA engine with the
// 4 KiB buffer, so that an edu driver (the Edu library) runs unchanged against MockKernel.

/// The test's handle on an edu model (``MockKernel/installEduModel(_:)``): faults to
/// inject, as a driver's timeout paths need them.
public final class MockEdu: Sendable {
    fileprivate let model: MockKernel.EduBuffer

    fileprivate init(_ model: MockKernel.EduBuffer) { self.model = model }

    /// The next `count` DMA commands are taken and never finished: the start bit stays set,
    /// nothing moves and no interrupt is raised, so the driver's wait times out. A later
    /// command written to the register starts afresh.
    public func stallNextDMA(count: Int = 1) {
        model.stalledDMAs.withLock { $0 += count }
    }

    /// The next `count` factorials never finish: the status's computing bit stays set, so
    /// the driver's wait times out; the next write of n starts afresh.
    public func stallNextFactorial(count: Int = 1) {
        model.stalledFactorials.withLock { $0 += count }
    }
}

extension MockKernel {
    /// The edu model's own memory (its 4 KiB DMA buffer) and the faults a test injected.
    fileprivate final class EduBuffer: Sendable {
        let bytes = Mutex([UInt8](repeating: 0, count: 4096))
        let stalledDMAs = Mutex(0)
        let stalledFactorials = Mutex(0)

        /// Whether the next command stalls (taking one of the stalls asked for).
        static func takeStall(_ stalls: borrowing Mutex<Int>) -> Bool {
            stalls.withLock { count in
                guard count > 0 else { return false }
                count -= 1
                return true
            }
        }
    }

    /// Makes the function at `address` behave as QEMU 7.2's edu on its BAR0 registers:
    /// `0x00` reads `0x010000ed`; `0x04` answers the inverse of what was written; `0x08`
    /// takes n and reads n! (the status's computing bit is never seen set: the model is
    /// instant); `0x60`/`0x64` set and clear the interrupt status at `0x24` (setting raises
    /// the enabled interrupt); a write of the DMA command (`0x98`) with the start bit
    /// copies `count` bytes between host memory (by DMA through the function's IOMMU, the
    /// address masked to edu's 28-bit DMA mask, like QEMU's `edu_clamp_addr`) and the
    /// device buffer at `0x40000`, then clears the start bit, raising interrupt bit `0x100`
    /// when asked. A DMA the IOMMU refuses moves nothing (QEMU reports the fault and
    /// finishes anyway). Returns the model's handle for faults (``MockEdu``).
    @discardableResult
    public func installEduModel(_ address: String) -> MockEdu {
        let buffer = EduBuffer()
        @Sendable func register(_ kernel: MockKernel, _ offset: Int) -> UnsafeMutableRawPointer? {
            unsafe kernel.barMemory(address, bar: 0).map { unsafe $0.baseAddress! + offset }
        }
        @Sendable func load64(_ kernel: MockKernel, _ offset: Int) -> UInt64 {
            unsafe register(kernel, offset)?.loadUnaligned(as: UInt64.self) ?? 0
        }
        onRegisterRead(address, bar: 0, at: 0x00) { _, _ in 0x0100_00ed }
        onRegisterWrite(address, bar: 0, at: 0x04) { kernel, access in
            unsafe register(kernel, 0x04)?.storeBytes(of: ~UInt32(truncatingIfNeeded: access.value), as: UInt32.self)
        }
        onRegisterWrite(address, bar: 0, at: 0x08) { kernel, access in
            let status = unsafe register(kernel, 0x20)
            guard !EduBuffer.takeStall(buffer.stalledFactorials) else {
                unsafe status?.storeBytes(of: status!.load(as: UInt32.self) | 1, as: UInt32.self)  // computing, for ever
                return
            }
            unsafe status?.storeBytes(of: status!.load(as: UInt32.self) & ~1, as: UInt32.self)
            var product: UInt32 = 1
            for factor in 1...max(1, UInt32(truncatingIfNeeded: access.value)) { product = product &* factor }
            unsafe register(kernel, 0x08)?.storeBytes(of: product, as: UInt32.self)
        }
        onRegisterWrite(address, bar: 0, at: 0x60) { kernel, access in
            guard let status = unsafe register(kernel, 0x24) else { return }
            unsafe status.storeBytes(of: status.load(as: UInt32.self) | UInt32(truncatingIfNeeded: access.value), as: UInt32.self)
            kernel.raiseInterrupt(address)
        }
        onRegisterWrite(address, bar: 0, at: 0x64) { kernel, access in
            guard let status = unsafe register(kernel, 0x24) else { return }
            unsafe status.storeBytes(of: status.load(as: UInt32.self) & ~UInt32(truncatingIfNeeded: access.value), as: UInt32.self)
        }
        onRegisterWrite(address, bar: 0, at: 0x98) { kernel, access in
            let command = access.value
            guard command & 0x1 != 0 else { return }
            // A stalled engine keeps the start bit (the write left it in the register).
            guard !EduBuffer.takeStall(buffer.stalledDMAs) else { return }
            let source = load64(kernel, 0x80), destination = load64(kernel, 0x88)
            let count = Int(min(load64(kernel, 0x90), 4096))
            let mask: UInt64 = (1 << 28) - 1
            if command & 0x2 != 0 {
                let start = Int(source &- 0x40000)
                if start >= 0, start + count <= 4096 {
                    let bytes = buffer.bytes.withLock { Array($0[start..<(start + count)]) }
                    _ = kernel.pciDeviceWrite(address, iova: destination & mask, bytes: bytes)
                }
            } else {
                let start = Int(destination &- 0x40000)
                if start >= 0, start + count <= 4096, let bytes = kernel.pciDeviceRead(address, iova: source & mask, length: count) {
                    buffer.bytes.withLock { $0.replaceSubrange(start..<(start + count), with: bytes) }
                }
            }
            unsafe register(kernel, 0x98)?.storeBytes(of: command & ~1, as: UInt64.self)
            if command & 0x4 != 0, let status = unsafe register(kernel, 0x24) {
                unsafe status.storeBytes(of: status.load(as: UInt32.self) | 0x100, as: UInt32.self)
                kernel.raiseInterrupt(address)
            }
        }
        return MockEdu(buffer)
    }
}
