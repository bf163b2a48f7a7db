import Foundation
import IOMMUFD
import VFIO

/// A minimal user-space driver for QEMU's `edu` teaching device (docs/specs/edu.rst):
/// BAR0 registers, and a DMA engine that copies between host memory (by IOVA) and a
/// 4 KiB buffer inside the device at device address 0x40000.
struct EduDevice: ~Copyable {
    enum Register {
        static let identification: UInt64 = 0x00
        static let liveness: UInt64 = 0x04
        static let interruptStatus: UInt64 = 0x24
        static let interruptRaise: UInt64 = 0x60
        static let interruptAcknowledge: UInt64 = 0x64
        static let dmaSource: UInt64 = 0x80
        static let dmaDestination: UInt64 = 0x88
        static let dmaCount: UInt64 = 0x90
        static let dmaCommand: UInt64 = 0x98
    }

    enum DMACommand {
        static let start: UInt64 = 0x1
        static let toHost: UInt64 = 0x2
    }

    /// The device-side buffer's address as the DMA engine sees it.
    static let internalBuffer: UInt64 = 0x40000
    /// QEMU 7.2's edu stops the whole VM on a DMA of exactly its buffer size; stay below.
    static let maximumTransfer: UInt64 = 4095
    /// edu masks DMA addresses to 28 bits: IOVAs must stay below 256 MiB.
    static let addressLimit: UInt64 = 1 << 28

    let registers: MMIORegion

    init(_ device: VFIODevice) throws {
        let bar0 = try device.region(0)
        registers = try device.map(bar0)
    }

    /// 0x010000ed for QEMU's edu: the low byte is 0xed.
    var identification: UInt32 { registers.read32(at: Register.identification) }

    /// edu answers a written value with its bitwise inverse.
    func livenessCheck(_ value: UInt32) -> UInt32 {
        registers.write32(value, at: Register.liveness)
        return registers.read32(at: Register.liveness)
    }

    /// Sets bits in the interrupt status register; edu then raises its interrupt (MSI
    /// when enabled, otherwise INTx).
    func raiseInterrupt(_ bits: UInt32) { registers.write32(bits, at: Register.interruptRaise) }

    /// The pending interrupt bits.
    var interruptStatus: UInt32 { registers.read32(at: Register.interruptStatus) }

    /// Clears interrupt bits (edu lowers INTx once none are left).
    func acknowledgeInterrupt(_ bits: UInt32) { registers.write32(bits, at: Register.interruptAcknowledge) }

    enum DMAError: Error { case timedOut }

    /// Copies `count` bytes from host IOVA `iova` into the device buffer at `offset`.
    func copyToDevice(from iova: IOVA, count: UInt64, offset: UInt64 = 0) throws {
        precondition(offset + count <= Self.maximumTransfer)
        try transfer(source: iova.rawValue, destination: Self.internalBuffer + offset, count: count, command: DMACommand.start)
    }

    /// Copies `count` bytes from the device buffer at `offset` to host IOVA `iova`.
    func copyToHost(to iova: IOVA, count: UInt64, offset: UInt64 = 0) throws {
        precondition(offset + count <= Self.maximumTransfer)
        try transfer(source: Self.internalBuffer + offset, destination: iova.rawValue, count: count,
                     command: DMACommand.start | DMACommand.toHost)
    }

    /// A DMA round trip through the page table the device is on now: writes 64 bytes that
    /// start at `seed` into `buffer` (mapped at `iova`), has edu copy them in and back out to
    /// the buffer's second half, and says whether every byte came back.
    func roundTrip(_ buffer: UnsafeMutableRawBufferPointer, at iova: IOVA, seed: UInt8) throws -> Bool {
        let half = buffer.count / 2
        for index in 0..<64 { buffer[index] = seed &+ UInt8(index) }
        try copyToDevice(from: iova, count: 64)
        try copyToHost(to: IOVA(iova.rawValue + UInt64(half)), count: 64)
        return (0..<64).allSatisfy { buffer[half + $0] == seed &+ UInt8($0) }
    }

    private func transfer(source: UInt64, destination: UInt64, count: UInt64, command: UInt64) throws {
        // Both ends inside the 4 KiB device buffer, and not ending on its last byte.
        precondition(count > 0 && count <= Self.maximumTransfer)
        registers.write64(source, at: Register.dmaSource)
        registers.write64(destination, at: Register.dmaDestination)
        registers.write64(count, at: Register.dmaCount)
        // The command is the doorbell: host memory written before it must reach edu first.
        registers.writeDoorbell64(command, at: Register.dmaCommand)
        // edu completes a DMA from a timer (100 ms of virtual time); poll the start bit,
        // with a read barrier after each poll so the buffer is read only after "done".
        let deadline = Date().addingTimeInterval(10)
        while registers.readCompletion64(at: Register.dmaCommand) & DMACommand.start != 0 {
            if Date() > deadline { throw DMAError.timedOut }
            LinuxSystem().sleep(nanoseconds: 1_000_000)
        }
    }
}
