import Synchronization

// Intel's 82574L (e1000e) played on a mock function's registers, as far as a poll-mode
// driver uses it (QEMU 7.2's hw/net/e1000e_core.c): reset, link, RAL0/RAH0, legacy receive
// and transmit descriptor rings, MAC loopback (RCTL.LBM 01) and the clear-on-read statistics.

/// The test's handle on an 82574L model (``MockKernel/installE1000EModel(_:mac:)``,
/// ``MockKernel/installE1000EPair(_:_:)``): faults to inject, as a driver's link, loss and
/// hang paths need them.
public final class MockE1000E: Sendable {
    fileprivate let model: MockKernel.E1000EModel

    fileprivate init(_ model: MockKernel.E1000EModel) { self.model = model }

    /// Takes the link down or brings it back (the cable pulled, or QEMU's `set_link`):
    /// while it is down STATUS.LU reads clear, frames the port sends are counted (GPTC) and
    /// lost, and frames sent to it are lost, as QEMU's net layer drops what a NIC with its
    /// link down sends and what is delivered to it (net/net.c).
    public func setLink(up: Bool) {
        model.faults.withLock { $0.linkDown = !up }
    }

    /// The next `count` frames the port sends are counted (GPTC) and never arrive, as frames
    /// QEMU's hub drops under load (a quarter of a txonly/rxonly split, seen in the VM).
    public func loseNextTransmittedFrames(count: Int) {
        model.faults.withLock { $0.framesToLose += count }
    }

    /// Stops (or restarts) the transmit engine: while stopped, TDT writes are taken but no
    /// descriptor is fetched or written back, as a hung transmitter; on restart the engine
    /// sends everything up to the last tail written.
    public func stallTransmit(_ stalled: Bool) {
        model.faults.withLock { $0.transmitStalled = stalled }
        if !stalled { model.resumeTransmit() }
    }
}

/// The kernel, held weakly by what a model keeps (the model lives as long as the kernel's
/// register hooks, so a strong reference would keep both for ever).
private struct WeakKernel: Sendable {
    weak var kernel: MockKernel?

    init(_ kernel: MockKernel) { self.kernel = kernel }
}

extension MockKernel {
    /// One 82574L's state beyond its registers: the counters and the port it is joined to.
    fileprivate final class E1000EModel: Sendable {
        struct Counters { var received: UInt32 = 0; var transmitted: UInt32 = 0; var missed: UInt32 = 0 }
        /// Faults a test injected (``MockE1000E``).
        struct Faults { var linkDown = false; var framesToLose = 0; var transmitStalled = false }
        let faults = Mutex(Faults())
        /// The kernel, for a stalled engine restarted by the test.
        let kernel = Mutex<WeakKernel?>(nil)

        func resumeTransmit() {
            if let kernel = kernel.withLock({ $0?.kernel }) { transmit(kernel) }
        }

        /// The transmit engine: from TDH to the tail last written, unless a test stalled it.
        func transmit(_ kernel: MockKernel) {
            guard register(kernel, 0x0400) & 0x2 != 0 else { return }  // TCTL.EN
            guard !faults.withLock({ $0.transmitStalled }) else { return }
            let transmitBase = UInt64(register(kernel, 0x3800)) | UInt64(register(kernel, 0x3804)) << 32
            let transmitCount = Int(register(kernel, 0x3808)) / 16
            guard transmitCount > 0 else { return }
            var head = Int(register(kernel, 0x3810))
            let tail = Int(register(kernel, 0x3818)) % transmitCount
            while head != tail {
                let descriptor = transmitBase + UInt64(16 * head)
                guard let bytes = kernel.pciDeviceRead(address, iova: descriptor, length: 16) else { break }
                let bufferAddress = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let length = Int(bytes[8]) | Int(bytes[9]) << 8
                var packet = kernel.pciDeviceRead(address, iova: bufferAddress, length: length)
                // TCTL.PSP pads short frames to 60 bytes (the FCS makes 64).
                if register(kernel, 0x0400) & 0x8 != 0, let short = packet, short.count < 60 { packet = short + [UInt8](repeating: 0, count: 60 - short.count) }
                // DD is written back only for a descriptor with RS (CMD bit 3), as QEMU 7.2's
                // e1000e_txdesc_writeback (hw/net/e1000e_core.c) skips the others.
                if bytes[11] & 0x08 != 0 { _ = kernel.pciDeviceWrite(address, iova: descriptor + 12, bytes: [bytes[12] | 1]) }
                counters.withLock { $0.transmitted &+= 1 }
                let lost = faults.withLock { faults in
                    guard !faults.linkDown else { return true }
                    guard faults.framesToLose > 0 else { return false }
                    faults.framesToLose -= 1
                    return true
                }
                if let packet, !lost {
                    if (register(kernel, 0x0100) >> 6) & 3 == 1 {
                        deliver(kernel, packet)
                    } else if let peer = peer.withLock({ $0.model }) {
                        peer.arrive(kernel, packet)
                    }
                }
                head = (head + 1) % transmitCount
                store(kernel, 0x3810, UInt32(head))
            }
        }

        /// The port at the other end of the cable (held weakly: the two refer to each other).
        struct Peer: Sendable { weak var model: E1000EModel? }
        let address: String
        let counters = Mutex(Counters())
        let peer = Mutex(Peer())
        /// Frames from the peer waiting for a free receive descriptor, as QEMU's net queue
        /// holds them while `e1000e_can_receive` is false (net/queue.c, at most 10000).
        let waiting = Mutex(WaitingFrames())
        static let waitingLimit = 10_000

        /// A first-in first-out queue of frames that takes from the front in O(1): a read
        /// index into the array, which drops the taken frames once they are half of it.
        struct WaitingFrames {
            private var frames: [[UInt8]] = []
            private var front = 0

            var isEmpty: Bool { front == frames.count }
            var count: Int { frames.count - front }

            mutating func append(_ frame: [UInt8]) { frames.append(frame) }

            mutating func takeFirst() -> [UInt8]? {
                guard !isEmpty else { return nil }
                let frame = frames[front]
                front += 1
                if front == frames.count {
                    frames.removeAll(keepingCapacity: true)
                    front = 0
                } else if front >= 64 && front * 2 >= frames.count {
                    frames.removeFirst(front)
                    front = 0
                }
                return frame
            }
        }

        init(address: String) { self.address = address }

        func register(_ kernel: MockKernel, _ offset: Int) -> UInt32 {
            unsafe kernel.barMemory(address, bar: 0)?.loadUnaligned(fromByteOffset: offset, as: UInt32.self) ?? 0
        }

        func store(_ kernel: MockKernel, _ offset: Int, _ value: UInt32) {
            unsafe kernel.barMemory(address, bar: 0)?.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
        }

        /// A packet into the next receive descriptor the driver gave (DD and EOP, its length;
        /// GPRC counts), or missed (MPC) when none is free; dropped uncounted while the
        /// receiver is off.
        func deliver(_ kernel: MockKernel, _ packet: [UInt8]) {
            guard register(kernel, 0x0100) & 0x2 != 0 else { return }
            _ = storeFrame(kernel, packet)
        }

        /// A frame from the peer: stored at once when a descriptor is free and nothing waits
        /// before it, else queued (dropped past the queue's limit) until the driver gives
        /// descriptors back (RDT) or enables the receiver (RCTL).
        func arrive(_ kernel: MockKernel, _ packet: [UInt8]) {
            guard !faults.withLock({ $0.linkDown }) else { return }
            let stored = waiting.withLock { $0.isEmpty } && register(kernel, 0x0100) & 0x2 != 0 && hasFreeDescriptor(kernel) && storeFrame(kernel, packet)
            if !stored { waiting.withLock { if $0.count < Self.waitingLimit { $0.append(packet) } } }
        }

        /// Stores the frames that wait while descriptors are free.
        func flush(_ kernel: MockKernel) {
            guard register(kernel, 0x0100) & 0x2 != 0 else { return }
            while hasFreeDescriptor(kernel), let packet = waiting.withLock({ $0.takeFirst() }) {
                _ = storeFrame(kernel, packet)
            }
        }

        func hasFreeDescriptor(_ kernel: MockKernel) -> Bool {
            Int(register(kernel, 0x2808)) / 16 > 0 && register(kernel, 0x2810) != register(kernel, 0x2818)
        }

        /// Writes `packet` into the next free receive descriptor's buffer; false (MPC counted)
        /// when there is none.
        @discardableResult
        func storeFrame(_ kernel: MockKernel, _ packet: [UInt8]) -> Bool {
            let receiveBase = UInt64(register(kernel, 0x2800)) | UInt64(register(kernel, 0x2804)) << 32
            let receiveCount = Int(register(kernel, 0x2808)) / 16
            let head = Int(register(kernel, 0x2810)), tail = Int(register(kernel, 0x2818))
            guard receiveCount > 0, head != tail,
                  let descriptor = kernel.pciDeviceRead(address, iova: receiveBase + UInt64(16 * head), length: 8) else {
                counters.withLock { $0.missed &+= 1 }
                return false
            }
            let bufferAddress = descriptor.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard kernel.pciDeviceWrite(address, iova: bufferAddress, bytes: packet) else { return false }
            let length = UInt16(packet.count)
            _ = kernel.pciDeviceWrite(address, iova: receiveBase + UInt64(16 * head) + 8,
                                      bytes: [UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8), 0, 0, 0x3, 0, 0, 0])
            counters.withLock { $0.received &+= 1 }
            store(kernel, 0x2810, UInt32((head + 1) % receiveCount))
            return true
        }
    }

    /// Makes the function at `address` an 82574L with MAC address `mac` (QEMU's default
    /// 52:54:00:12:34:56): CTRL.RST clears itself, STATUS reports link up (full duplex,
    /// 1000 Mb/s) once CTRL.SLU is set, RAL0/RAH0 hold the address (AV set). A write of
    /// TDT sends the descriptors from TDH to it: each packet is read by DMA, its descriptor
    /// gets DD when it asked for it (RS), GPTC counts it, and in MAC loopback (RCTL.LBM 01) it lands in the function's
    /// own next receive descriptor (DD and EOP, its length, short frames padded to 60 bytes
    /// with TCTL.PSP; GPRC counts) or is missed (MPC) when none is free. GPRC, GPTC and MPC
    /// clear on read. Outside loopback a packet goes to the port joined by
    /// ``installE1000EPair(_:_:)``, or nowhere; frames for a port with no free descriptor wait
    /// (up to 10000) until its driver gives descriptors back, as QEMU's hub holds them.
    @discardableResult
    public func installE1000EModel(_ address: String, mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]) -> MockE1000E {
        MockE1000E(makeE1000EModel(address, mac: mac))
    }

    /// Makes the functions at `first` and `second` two 82574Ls joined back to back, as two
    /// QEMU e1000e on one hub: what one transmits outside loopback, the other receives (or
    /// misses). Their MAC addresses are QEMU's default and the next one. Returns their handles.
    @discardableResult
    public func installE1000EPair(_ first: String, _ second: String) -> (MockE1000E, MockE1000E) {
        let one = makeE1000EModel(first, mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        let other = makeE1000EModel(second, mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x57])
        one.peer.withLock { $0.model = other }
        other.peer.withLock { $0.model = one }
        // Each model lives as long as the register hooks that capture it, which is as long as the kernel.
        return (MockE1000E(one), MockE1000E(other))
    }

    private func makeE1000EModel(_ address: String, mac: [UInt8]) -> E1000EModel {
        let model = E1000EModel(address: address)
        onRegisterWrite(address, bar: 0, at: 0x0000) { kernel, access in
            model.store(kernel, 0x0000, UInt32(truncatingIfNeeded: access.value) & ~(1 << 26))  // RST is done at once
        }
        onRegisterRead(address, bar: 0, at: 0x0008) { kernel, _ in
            model.register(kernel, 0x0000) & 1 << 6 != 0 && !model.faults.withLock({ $0.linkDown }) ? 0x1 | 0x2 | 0x2 << 6 : 0x1
        }
        onRegisterRead(address, bar: 0, at: 0x5400) { _, _ in UInt64(mac[0]) | UInt64(mac[1]) << 8 | UInt64(mac[2]) << 16 | UInt64(mac[3]) << 24 }
        onRegisterRead(address, bar: 0, at: 0x5404) { _, _ in UInt64(mac[4]) | UInt64(mac[5]) << 8 | 1 << 31 }
        onRegisterRead(address, bar: 0, at: 0x4074) { _, _ in UInt64(model.counters.withLock { counters in defer { counters.received = 0 }; return counters.received }) }
        onRegisterRead(address, bar: 0, at: 0x4080) { _, _ in UInt64(model.counters.withLock { counters in defer { counters.transmitted = 0 }; return counters.transmitted }) }
        onRegisterRead(address, bar: 0, at: 0x4010) { _, _ in UInt64(model.counters.withLock { counters in defer { counters.missed = 0 }; return counters.missed }) }
        // Descriptors given back (RDT) or the receiver enabled (RCTL) let waiting frames in,
        // as e1000e_core.c flushes the net queue on both.
        onRegisterWrite(address, bar: 0, at: 0x2818) { kernel, access in
            model.store(kernel, 0x2818, UInt32(truncatingIfNeeded: access.value))
            model.flush(kernel)
        }
        onRegisterWrite(address, bar: 0, at: 0x0100) { kernel, access in
            model.store(kernel, 0x0100, UInt32(truncatingIfNeeded: access.value))
            model.flush(kernel)
        }
        model.kernel.withLock { $0 = WeakKernel(self) }
        onRegisterWrite(address, bar: 0, at: 0x3818) { kernel, access in
            model.store(kernel, 0x3818, UInt32(truncatingIfNeeded: access.value))
            model.transmit(kernel)
        }
        return model
    }
}
