public import IOMMUFD
public import VFIO

/// A user-space driver for QEMU's `edu` teaching device (QEMU's docs/specs/edu.rst), on the
/// toolkit: its BAR0 registers (identification, the liveness check, the factorial unit, the
/// interrupt status) and its DMA engine, which copies between host memory, by IOVA, and a
/// 4 KiB buffer inside the device at device address `0x40000`. The hardware tests, the
/// getting-started article and MockKernel's edu model (`MockKernel.installEduModel`) run
/// this same driver.
///
/// The device must be claimed (bound and attached, with Bus Master Enable set for DMA) by
/// the caller; the driver owns only its BAR mapping.
public struct EduDevice: ~Copyable {
    /// BAR0 register offsets.
    public enum Register {
        /// `0x010000ed` (edu 1.0).
        public static let identification: UInt64 = 0x00
        /// Reads back the bitwise inverse of what was written.
        public static let liveness: UInt64 = 0x04
        /// Write n, read n! (32 bits) once the status's computing bit is clear.
        public static let factorial: UInt64 = 0x08
        /// Bit 0: the factorial is being computed; bit 7: raise an interrupt when it is done.
        public static let status: UInt64 = 0x20
        /// The pending interrupt bits.
        public static let interruptStatus: UInt64 = 0x24
        /// Writing sets interrupt bits and raises the interrupt.
        public static let interruptRaise: UInt64 = 0x60
        /// Writing clears interrupt bits.
        public static let interruptAcknowledge: UInt64 = 0x64
        /// The DMA source address (64 bits).
        public static let dmaSource: UInt64 = 0x80
        /// The DMA destination address (64 bits).
        public static let dmaDestination: UInt64 = 0x88
        /// The DMA byte count (64 bits).
        public static let dmaCount: UInt64 = 0x90
        /// The DMA command (64 bits): the doorbell.
        public static let dmaCommand: UInt64 = 0x98
    }

    /// Bits of ``Register/dmaCommand``.
    public enum DMACommand {
        /// Start the transfer; the device clears it when done.
        public static let start: UInt64 = 0x1
        /// From the device buffer to host memory (clear: from host memory to the buffer).
        public static let toHost: UInt64 = 0x2
        /// Raise interrupt bit `0x100` when done.
        public static let interruptWhenDone: UInt64 = 0x4
    }

    /// The errors of the DMA engine and the factorial unit.
    public enum Failure: Error, Equatable {
        /// The device did not finish within the timeout (QEMU completes a DMA 100 ms of
        /// virtual time after the doorbell).
        case timedOut
    }

    /// The device-side buffer's address as the DMA engine sees it.
    public static let internalBuffer: UInt64 = 0x40000
    /// The most bytes one transfer moves: QEMU 7.2's edu stops the whole VM on a DMA of
    /// exactly its buffer size (4096), so the driver stays below.
    public static let maximumTransfer: UInt64 = 4095
    /// edu's default DMA mask is 28 bits: host addresses (IOVAs) must stay below 256 MiB.
    public static let addressLimit: UInt64 = 1 << 28

    /// The BAR0 mapping.
    public let registers: MMIORegion
    private let timeoutNanoseconds: UInt64

    /// Maps BAR0 of `device` (open and bound) and takes the device; `timeout` bounds each
    /// wait for the device, in seconds.
    public init(_ device: VFIODevice, timeout: Double = 10) throws(IOMMUError) {
        registers = try device.map(try device.region(0))
        timeoutNanoseconds = UInt64(timeout * 1e9)
    }

    /// `0x010000ed` for QEMU's edu: the low byte is `0xed`.
    public var identification: UInt32 { registers.read32(at: Register.identification) }

    /// Writes `value` to the liveness register and returns what the device answers (its
    /// bitwise inverse when the device is alive).
    public func livenessCheck(_ value: UInt32) -> UInt32 {
        registers.write32(value, at: Register.liveness)
        return registers.read32(at: Register.liveness)
    }

    /// Has the device compute `n!` (modulo 2^32) and returns it.
    ///
    /// - Throws: ``Failure/timedOut`` when the device stays busy.
    public func factorial(of n: UInt32) throws(Failure) -> UInt32 {
        registers.write32(n, at: Register.factorial)
        try waitUntilClear(0x1) { registers.read32(at: Register.status) }
        return registers.read32(at: Register.factorial)
    }

    /// Sets bits in the interrupt status register; edu then raises its interrupt (MSI
    /// when enabled, otherwise INTx).
    public func raiseInterrupt(_ bits: UInt32) { registers.write32(bits, at: Register.interruptRaise) }

    /// The pending interrupt bits.
    public var interruptStatus: UInt32 { registers.read32(at: Register.interruptStatus) }

    /// Clears interrupt bits (edu lowers INTx once none are left).
    public func acknowledgeInterrupt(_ bits: UInt32) { registers.write32(bits, at: Register.interruptAcknowledge) }

    /// Copies `count` bytes (1 to ``maximumTransfer``) from host IOVA `iova` into the
    /// device buffer at `offset`.
    ///
    /// - Throws: ``Failure/timedOut`` when the device does not finish.
    public func copyToDevice(from iova: IOVA, count: UInt64, offset: UInt64 = 0, interruptWhenDone: Bool = false) throws(Failure) {
        precondition(count > 0 && offset + count <= Self.maximumTransfer, "edu moves 1 to 4095 bytes inside its buffer")
        try transfer(source: iova.rawValue, destination: Self.internalBuffer + offset, count: count,
                     command: DMACommand.start | (interruptWhenDone ? DMACommand.interruptWhenDone : 0))
    }

    /// Copies `count` bytes (1 to ``maximumTransfer``) from the device buffer at `offset`
    /// to host IOVA `iova`.
    ///
    /// - Throws: ``Failure/timedOut`` when the device does not finish.
    public func copyToHost(to iova: IOVA, count: UInt64, offset: UInt64 = 0, interruptWhenDone: Bool = false) throws(Failure) {
        precondition(count > 0 && offset + count <= Self.maximumTransfer, "edu moves 1 to 4095 bytes inside its buffer")
        try transfer(source: Self.internalBuffer + offset, destination: iova.rawValue, count: count,
                     command: DMACommand.start | DMACommand.toHost | (interruptWhenDone ? DMACommand.interruptWhenDone : 0))
    }

    private func transfer(source: UInt64, destination: UInt64, count: UInt64, command: UInt64) throws(Failure) {
        registers.write64(source, at: Register.dmaSource)
        registers.write64(destination, at: Register.dmaDestination)
        registers.write64(count, at: Register.dmaCount)
        // The command is the doorbell: host memory written before it must reach edu first.
        registers.writeDoorbell64(command, at: Register.dmaCommand)
        // Poll the start bit, with a read barrier after each poll so that the host buffer
        // is read only after "done".
        try waitUntilClear(DMACommand.start) { registers.readCompletion64(at: Register.dmaCommand) }
    }

    /// Polls `read` every millisecond until `bits` are clear, or the timeout passes.
    private func waitUntilClear<Value: FixedWidthInteger>(_ bits: Value, _ read: () -> Value) throws(Failure) {
        guard DeviceWait.until(timeout: timeoutNanoseconds, interval: 1_000_000, { read() & bits == 0 }) else { throw .timedOut }
    }
}
