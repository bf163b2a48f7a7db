import Synchronization

// Intel's 82574L (e1000e) played on a mock function's registers, as far as a poll-mode
// driver uses it (QEMU 7.2's hw/net/e1000e_core.c): reset, link, RAL0/RAH0, legacy receive
// and transmit descriptor rings, MAC loopback (RCTL.LBM 01) and the clear-on-read statistics.
extension MockKernel {
    /// The model's counters.
    private final class E1000EModel: Sendable {
        struct Counters { var received: UInt32 = 0; var transmitted: UInt32 = 0; var missed: UInt32 = 0 }
        let counters = Mutex(Counters())
    }

    /// Makes the function at `address` an 82574L with MAC address `mac` (QEMU's default
    /// 52:54:00:12:34:56): CTRL.RST clears itself, STATUS reports link up (full duplex,
    /// 1000 Mb/s) once CTRL.SLU is set, RAL0/RAH0 hold the address (AV set). A write of
    /// TDT sends the descriptors from TDH to it: each packet is read by DMA, its descriptor
    /// gets DD, GPTC counts it, and in MAC loopback with the receiver on it lands in the
    /// next receive descriptor the driver gave (DD and EOP, its length, short frames padded
    /// to 60 bytes with TCTL.PSP; GPRC counts) or is
    /// missed (MPC) when none is free. GPRC, GPTC and MPC clear on read.
    public func installE1000EModel(_ address: String, mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]) {
        let model = E1000EModel()
        @Sendable func register(_ kernel: MockKernel, _ offset: Int) -> UInt32 {
            unsafe kernel.barMemory(address, bar: 0)?.loadUnaligned(fromByteOffset: offset, as: UInt32.self) ?? 0
        }
        @Sendable func store(_ kernel: MockKernel, _ offset: Int, _ value: UInt32) {
            unsafe kernel.barMemory(address, bar: 0)?.storeBytes(of: value, toByteOffset: offset, as: UInt32.self)
        }
        onRegisterWrite(address, bar: 0, at: 0x0000) { kernel, access in
            store(kernel, 0x0000, UInt32(truncatingIfNeeded: access.value) & ~(1 << 26))  // RST is done at once
        }
        onRegisterRead(address, bar: 0, at: 0x0008) { kernel, _ in
            register(kernel, 0x0000) & 1 << 6 != 0 ? 0x1 | 0x2 | 0x2 << 6 : 0x1
        }
        onRegisterRead(address, bar: 0, at: 0x5400) { _, _ in UInt64(mac[0]) | UInt64(mac[1]) << 8 | UInt64(mac[2]) << 16 | UInt64(mac[3]) << 24 }
        onRegisterRead(address, bar: 0, at: 0x5404) { _, _ in UInt64(mac[4]) | UInt64(mac[5]) << 8 | 1 << 31 }
        onRegisterRead(address, bar: 0, at: 0x4074) { _, _ in UInt64(model.counters.withLock { counters in defer { counters.received = 0 }; return counters.received }) }
        onRegisterRead(address, bar: 0, at: 0x4080) { _, _ in UInt64(model.counters.withLock { counters in defer { counters.transmitted = 0 }; return counters.transmitted }) }
        onRegisterRead(address, bar: 0, at: 0x4010) { _, _ in UInt64(model.counters.withLock { counters in defer { counters.missed = 0 }; return counters.missed }) }
        onRegisterWrite(address, bar: 0, at: 0x3818) { kernel, access in
            guard register(kernel, 0x0400) & 0x2 != 0 else { return }  // TCTL.EN
            let transmitBase = UInt64(register(kernel, 0x3800)) | UInt64(register(kernel, 0x3804)) << 32
            let transmitCount = Int(register(kernel, 0x3808)) / 16
            guard transmitCount > 0 else { return }
            var head = Int(register(kernel, 0x3810))
            let tail = Int(access.value) % transmitCount
            while head != tail {
                let descriptor = transmitBase + UInt64(16 * head)
                guard let bytes = kernel.pciDeviceRead(address, iova: descriptor, length: 16) else { break }
                let bufferAddress = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let length = Int(bytes[8]) | Int(bytes[9]) << 8
                var packet = kernel.pciDeviceRead(address, iova: bufferAddress, length: length)
                // TCTL.PSP pads short frames to 60 bytes (the FCS makes 64).
                if register(kernel, 0x0400) & 0x8 != 0, let short = packet, short.count < 60 { packet = short + [UInt8](repeating: 0, count: 60 - short.count) }
                _ = kernel.pciDeviceWrite(address, iova: descriptor + 12, bytes: [bytes[12] | 1])  // DD
                model.counters.withLock { $0.transmitted &+= 1 }
                let control = register(kernel, 0x0100)
                if let packet, control & 0x2 != 0, (control >> 6) & 3 == 1 {
                    deliver(kernel, packet)
                }
                head = (head + 1) % transmitCount
                store(kernel, 0x3810, UInt32(head))
            }
        }
        /// A packet into the next receive descriptor the driver gave, or missed.
        @Sendable func deliver(_ kernel: MockKernel, _ packet: [UInt8]) {
            let receiveBase = UInt64(register(kernel, 0x2800)) | UInt64(register(kernel, 0x2804)) << 32
            let receiveCount = Int(register(kernel, 0x2808)) / 16
            let head = Int(register(kernel, 0x2810)), tail = Int(register(kernel, 0x2818))
            guard receiveCount > 0, head != tail,
                  let descriptor = kernel.pciDeviceRead(address, iova: receiveBase + UInt64(16 * head), length: 8) else {
                model.counters.withLock { $0.missed &+= 1 }
                return
            }
            let bufferAddress = descriptor.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            guard kernel.pciDeviceWrite(address, iova: bufferAddress, bytes: packet) else { return }
            let length = UInt16(packet.count)
            _ = kernel.pciDeviceWrite(address, iova: receiveBase + UInt64(16 * head) + 8,
                                      bytes: [UInt8(truncatingIfNeeded: length), UInt8(truncatingIfNeeded: length >> 8), 0, 0, 0x3, 0, 0, 0])
            model.counters.withLock { $0.received &+= 1 }
            store(kernel, 0x2810, UInt32((head + 1) % receiveCount))
        }
    }
}
