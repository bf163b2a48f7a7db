public import DMAMemory
import IOMMUFD
public import VFIO

/// The errors of the e1000e driver.
public enum E1000EError: Error, Equatable, Sendable {
    /// The device did not reach a state in time (reset done, link up).
    case timedOut(String)
    /// No DMA memory for the rings or the buffers.
    case outOfDMAMemory
}

/// A user-space driver for Intel's 82574L (e1000e), as QEMU emulates it: reset, the MAC
/// address from RAL0/RAH0, link up, one receive and one transmit ring of legacy descriptors
/// on 2 KiB buffers from a `DMAArena`, bursts of transmit and receive without allocation
/// per packet, the statistics registers, and MAC loopback (RCTL.LBM) so one port carries
/// traffic with no network. One thread at a time.
///
/// The caller claims the device (bound, attached, Bus Master Enable set) and gives a
/// `DMAMemoryManager` over its address space.
public final class E1000E {
    /// Register offsets (82574L datasheet, 10.2).
    public enum Register {
        /// Device Control: RST (bit 26), SLU (bit 6).
        public static let control: UInt64 = 0x0000
        /// Device Status: FD (bit 0), LU (bit 1), SPEED (bits 7:6).
        public static let status: UInt64 = 0x0008
        /// Interrupt Mask Clear.
        public static let interruptMaskClear: UInt64 = 0x00d8
        /// Receive Control: EN (1), UPE (3), MPE (4), LBM (7:6), BAM (15), SECRC (26).
        public static let receiveControl: UInt64 = 0x0100
        /// Transmit Control: EN (1), PSP (3), CT (11:4), COLD (21:12).
        public static let transmitControl: UInt64 = 0x0400
        /// Transmit IPG.
        public static let transmitIPG: UInt64 = 0x0410
        /// Receive descriptor ring: base low/high, length, head, tail.
        public static let receiveBaseLow: UInt64 = 0x2800, receiveBaseHigh: UInt64 = 0x2804, receiveLength: UInt64 = 0x2808
        /// Receive head and tail.
        public static let receiveHead: UInt64 = 0x2810, receiveTail: UInt64 = 0x2818
        /// Transmit descriptor ring: base low/high, length, head, tail.
        public static let transmitBaseLow: UInt64 = 0x3800, transmitBaseHigh: UInt64 = 0x3804, transmitLength: UInt64 = 0x3808
        /// Transmit head and tail.
        public static let transmitHead: UInt64 = 0x3810, transmitTail: UInt64 = 0x3818
        /// Receive Address 0 low and high (AV, bit 31 of high).
        public static let receiveAddressLow: UInt64 = 0x5400, receiveAddressHigh: UInt64 = 0x5404
        /// Good Packets Received and Transmitted Count (clear on read).
        public static let goodPacketsReceived: UInt64 = 0x4074, goodPacketsTransmitted: UInt64 = 0x4080
        /// Missed Packets Count (clear on read).
        public static let missedPackets: UInt64 = 0x4010
    }

    /// The size of each packet buffer.
    public static let bufferSize = 2048
    /// The BAR0 registers.
    let registers: MMIORegion
    let arena: DMAArena
    let receiveRing: DMASlice, transmitRing: DMASlice
    let receiveBuffers: [DMASlice], transmitBuffers: [DMASlice]
    /// Descriptors per ring (a multiple of 8).
    public let ringSize: Int
    private var receiveNext = 0
    private var transmitNext = 0, transmitClean = 0
    /// The descriptors sent with RS (report status), oldest first: the last of each burst.
    /// The NIC writes DD back only for those, so reclaiming reads one status per burst, as
    /// DPDK's em PMD does with its RS threshold (a ring of ringSize slots, never reallocated).
    private var reported: [Int]
    private var reportedFirst = 0, reportedCount = 0
    private let timeoutNanoseconds: UInt64
    /// The MAC address the device reported (RAL0/RAH0).
    public private(set) var macAddress: [UInt8] = []

    /// Resets the NIC, brings the link up and starts both rings of `ringSize` descriptors
    /// (a multiple of 8, up to 256), in MAC loopback when `loopback` (what it sends, it
    /// receives).
    public init(_ device: VFIODevice, manager: DMAMemoryManager, ringSize: Int = 64, loopback: Bool = false, timeout: Double = 10) throws {
        precondition(ringSize % 8 == 0 && ringSize >= 8 && ringSize <= 256, "a ring is 8 to 256 descriptors, a multiple of 8")
        registers = try device.map(try device.region(0))
        self.ringSize = ringSize
        reported = [Int](repeating: 0, count: ringSize)
        timeoutNanoseconds = UInt64(timeout * 1e9)
        let length = 2 * ringSize * 16 + 2 * ringSize * Self.bufferSize
        arena = DMAArena(region: try manager.makeRegion(length: (length + 8192 + 4095) & ~4095, backing: .exactly(.memfd)))
        guard let receive = arena.allocate(ringSize * 16, alignment: 128), let transmit = arena.allocate(ringSize * 16, alignment: 128) else {
            throw E1000EError.outOfDMAMemory
        }
        receiveRing = receive
        transmitRing = transmit
        var receiveBuffers: [DMASlice] = [], transmitBuffers: [DMASlice] = []
        for _ in 0..<ringSize {
            guard let rx = arena.allocate(Self.bufferSize), let tx = arena.allocate(Self.bufferSize) else { throw E1000EError.outOfDMAMemory }
            receiveBuffers.append(rx)
            transmitBuffers.append(tx)
        }
        self.receiveBuffers = receiveBuffers
        self.transmitBuffers = transmitBuffers

        // Reset with interrupts masked; RST clears itself.
        registers.write32(0xffff_ffff, at: Register.interruptMaskClear)
        registers.write32(registers.read32(at: Register.control) | 1 << 26, at: Register.control)
        try Self.waitUntil(timeoutNanoseconds, "CTRL.RST clear") { registers.read32(at: Register.control) & 1 << 26 == 0 }
        registers.write32(0xffff_ffff, at: Register.interruptMaskClear)
        let low = registers.read32(at: Register.receiveAddressLow), high = registers.read32(at: Register.receiveAddressHigh)
        macAddress = (0..<4).map { UInt8(truncatingIfNeeded: low >> (8 * $0)) } + (0..<2).map { UInt8(truncatingIfNeeded: high >> (8 * $0)) }
        registers.write32(registers.read32(at: Register.control) | 1 << 6, at: Register.control)  // SLU
        try Self.waitUntil(timeoutNanoseconds, "STATUS.LU") { registers.read32(at: Register.status) & 0x2 != 0 }

        // Receive: every descriptor owns a buffer; the tail gives all but one to the NIC.
        for index in 0..<ringSize {
            let descriptor = unsafe receive.address + 16 * index
            unsafe descriptor.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
            unsafe descriptor.storeBytes(of: receiveBuffers[index].iova.rawValue.littleEndian, as: UInt64.self)
        }
        unsafe transmit.address.initializeMemory(as: UInt8.self, repeating: 0, count: ringSize * 16)
        registers.write64(receive.iova.rawValue, at: Register.receiveBaseLow, halves: .lowFirst)
        registers.write32(UInt32(ringSize * 16), at: Register.receiveLength)
        registers.write32(0, at: Register.receiveHead)
        registers.write32(UInt32(ringSize - 1), at: Register.receiveTail)
        // EN, UPE, MPE, BAM, SECRC, 2 KiB buffers, and LBM 01 for MAC loopback.
        registers.write32(1 << 1 | 1 << 3 | 1 << 4 | 1 << 15 | 1 << 26 | (loopback ? 1 << 6 : 0), at: Register.receiveControl)
        registers.write64(transmit.iova.rawValue, at: Register.transmitBaseLow, halves: .lowFirst)
        registers.write32(UInt32(ringSize * 16), at: Register.transmitLength)
        registers.write32(0, at: Register.transmitHead)
        registers.write32(0, at: Register.transmitTail)
        registers.write32(10 | 8 << 10 | 6 << 20, at: Register.transmitIPG)
        registers.write32(1 << 1 | 1 << 3 | 0x0f << 4 | 0x40 << 12, at: Register.transmitControl)
    }

    private static func waitUntil(_ timeout: UInt64, _ what: @autoclosure () -> String, _ done: () -> Bool) throws {
        guard DeviceWait.until(timeout: timeout, interval: 100_000, done) else { throw E1000EError.timedOut(what()) }
    }

    /// Reclaims transmit descriptors the NIC is done with: every burst up to the last one
    /// whose RS descriptor has DD set.
    private func reclaimTransmitted() {
        var first = reportedFirst, count = reportedCount, clean = transmitClean
        let ring = unsafe transmitRing.address
        while count > 0 {
            let last = reported[first]
            guard unsafe DeviceWrittenMemory.load32(ring + 16 * last + 12) & 1 != 0 else { break }
            clean = last + 1 == ringSize ? 0 : last + 1
            first = first + 1 == ringSize ? 0 : first + 1
            count -= 1
        }
        reportedFirst = first
        reportedCount = count
        transmitClean = clean
    }

    /// Sends up to `count` packets of `length` bytes (14 to 2048), each filled by `fill`
    /// (given the packet's index in the burst and its bytes), and rings the tail once;
    /// returns how many went into the ring (fewer when it is full). Only the burst's last
    /// descriptor asks for its status (RS). The ring state is held in locals for the burst
    /// (one exclusivity check per burst, not per packet).
    public func transmit(count: Int, length: Int, _ fill: (Int, UnsafeMutableRawBufferPointer) -> Void) -> Int {
        precondition(length >= 14 && length <= Self.bufferSize)
        reclaimTransmitted()
        let ring = unsafe transmitRing.address, size = ringSize, clean = transmitClean
        var next = transmitNext, sent = 0
        // EOP | IFCS, the length; the last descriptor gets RS too (below).
        let command = (UInt32(length) | UInt32(0x03) << 24).littleEndian
        while sent < count {
            let following = next + 1 == size ? 0 : next + 1
            guard following != clean else { break }
            let buffer = transmitBuffers[next]
            unsafe fill(sent, UnsafeMutableRawBufferPointer(start: buffer.address, count: length))
            let descriptor = unsafe ring + 16 * next
            unsafe descriptor.storeBytes(of: buffer.iova.rawValue.littleEndian, as: UInt64.self)
            unsafe descriptor.storeBytes(of: command, toByteOffset: 8, as: UInt32.self)
            unsafe descriptor.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
            next = following
            sent += 1
        }
        guard sent > 0 else { return 0 }
        let last = next == 0 ? size - 1 : next - 1
        unsafe (ring + 16 * last).storeBytes(of: (UInt32(length) | UInt32(0x0b) << 24).littleEndian, toByteOffset: 8, as: UInt32.self)
        let slot = reportedFirst + reportedCount
        reported[slot >= size ? slot - size : slot] = last
        reportedCount += 1
        transmitNext = next
        registers.writeDoorbell32(UInt32(next), at: Register.transmitTail)
        return sent
    }

    /// Receives up to `count` packets: `deliver` gets each one's bytes (valid during the
    /// call), then its buffer goes back to the NIC; the tail is written once. Returns how many.
    public func receive(count: Int, _ deliver: (UnsafeRawBufferPointer) -> Void) -> Int {
        let ring = unsafe receiveRing.address, size = ringSize
        var next = receiveNext, received = 0
        while received < count {
            let descriptor = unsafe ring + 16 * next
            let word = unsafe DeviceWrittenMemory.load64(descriptor + 8)
            guard word >> 32 & 1 != 0 else { break }  // DD
            unsafe deliver(UnsafeRawBufferPointer(start: receiveBuffers[next].address, count: Int(word & 0xffff)))
            unsafe (descriptor + 8).storeBytes(of: UInt64(0), as: UInt64.self)
            received += 1
            next = next + 1 == size ? 0 : next + 1
        }
        guard received > 0 else { return 0 }
        receiveNext = next
        // The descriptors just emptied go back to the NIC with one tail write: the tail is the
        // last one returned (the NIC fills up to, not including, the tail).
        registers.writeDoorbell32(UInt32(next == 0 ? size - 1 : next - 1), at: Register.receiveTail)
        return received
    }

    /// What STATUS says about the link.
    public struct LinkStatus: Sendable, Hashable {
        /// Link up (LU).
        public var isUp: Bool
        /// Full duplex (FD).
        public var isFullDuplex: Bool
        /// The speed in Mb/s (SPEED: 10, 100 or 1000).
        public var megabitsPerSecond: Int

        /// A link state: up or down, duplex, speed.
        public init(isUp: Bool, isFullDuplex: Bool, megabitsPerSecond: Int) {
            self.isUp = isUp
            self.isFullDuplex = isFullDuplex
            self.megabitsPerSecond = megabitsPerSecond
        }
    }

    /// The link as the device reports it now (STATUS, read at each call): up or down, duplex
    /// and speed. QEMU's 82574L reports up, full duplex, 1000 Mb/s, until the link is taken
    /// down (its `set_link` command); a driver that finds it down sends nothing that
    /// arrives, as it receives nothing.
    public var linkStatus: LinkStatus {
        let status = registers.read32(at: Register.status)
        let speeds = [10, 100, 1000, 1000]
        return LinkStatus(isUp: status & 0x2 != 0, isFullDuplex: status & 0x1 != 0, megabitsPerSecond: speeds[Int((status >> 6) & 3)])
    }

    /// The statistics since the last read (the counters clear on read).
    public func statistics() -> (received: UInt32, transmitted: UInt32, missed: UInt32) {
        (registers.read32(at: Register.goodPacketsReceived), registers.read32(at: Register.goodPacketsTransmitted), registers.read32(at: Register.missedPackets))
    }

    /// Both directions stop before the rings' memory goes.
    deinit {
        stop()
    }

    /// Stops both directions (RCTL.EN and TCTL.EN cleared).
    public func stop() {
        registers.write32(0, at: Register.receiveControl)
        registers.write32(0, at: Register.transmitControl)
    }
}
