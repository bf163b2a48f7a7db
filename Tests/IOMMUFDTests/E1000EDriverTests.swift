import DMAMemory
import E1000E
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO

/// The e1000e driver unchanged against MockKernel's 82574L model (`installE1000EModel`):
/// bring-up, MAC address, link, and N packets sent in MAC loopback come back as exactly
/// those N payloads, in order, in bursts of 32 through a 64-descriptor ring that wraps.
@Suite("the e1000e driver on MockKernel's 82574L")
struct E1000EDriverTests {
    static let address = "0000:00:03.0"

    @Test("MAC loopback: 200 frames of 64 bytes in bursts of 32 come back in order, byte for byte; the statistics count them")
    func loopback() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.e1000e())
        configuration.memlockLimit = nil
        let kernel = MockKernel(configuration: configuration)
        kernel.installE1000EModel(Self.address)
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            let claimed = try context.claim(try PCIAddress(parsing: Self.address))
            try claimed.device.setBusMaster(true)
            let nic = try E1000E(claimed.device, manager: try DMAMemoryManager(addressSpace: context.addressSpace), ringSize: 64, loopback: true, timeout: 2)
            #expect(nic.macAddress == [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
            let total = 200
            var sent = 0, received: [UInt32] = []
            while received.count < total {
                let base = sent
                sent += nic.transmit(count: min(32, total - sent), length: 64) { index, frame in
                    frame.initializeMemory(as: UInt8.self, repeating: 0)
                    for byte in 0..<6 { frame[byte] = 0xff }                     // broadcast
                    frame[12] = 0x88; frame[13] = 0xb5                            // a local experimental EtherType
                    frame.storeBytes(of: UInt32(base + index), toByteOffset: 14, as: UInt32.self)
                }
                _ = nic.receive(count: 32) { frame in
                    #expect(frame.count == 64)
                    received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self))
                }
            }
            #expect(received == (0..<UInt32(total)).map { $0 }, "every payload once, in order")
            let statistics = nic.statistics()
            #expect(statistics.transmitted == UInt32(total) && statistics.received == UInt32(total) && statistics.missed == 0)
            nic.stop()
            try claimed.device.setBusMaster(false)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    /// Two ports joined back to back (`installE1000EPair`, 00:03.0 and 00:05.0) in one DMA
    /// context, each with rings of `ringSize`; stopped and checked for leaks after `body`.
    static func withPair(ringSize: Int, _ body: (_ transmitter: E1000E, _ listener: E1000E) throws -> Void) throws {
        try withPair(ringSize: ringSize) { transmitter, listener, _ in try body(transmitter, listener) }
    }

    /// As above, with the two models' fault handles (the transmitter's, the listener's).
    static func withPair(ringSize: Int, _ body: (_ transmitter: E1000E, _ listener: E1000E, _ faults: (MockE1000E, MockE1000E)) throws -> Void) throws {
        let second = "0000:00:05.0"
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.e1000e())
        configuration.addPCIDevice(.e1000e(address: second, group: 5))
        configuration.memlockLimit = nil
        let kernel = MockKernel(configuration: configuration)
        let faults = kernel.installE1000EPair(address, second)
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            let sender = try context.claim(try PCIAddress(parsing: address)), receiver = try context.claim(try PCIAddress(parsing: second))
            try sender.device.setBusMaster(true)
            try receiver.device.setBusMaster(true)
            let manager = try DMAMemoryManager(addressSpace: context.addressSpace)
            let transmitter = try E1000E(sender.device, manager: manager, ringSize: ringSize, timeout: 2)
            let listener = try E1000E(receiver.device, manager: manager, ringSize: ringSize, timeout: 2)
            try body(transmitter, listener, faults)
            transmitter.stop(); listener.stop()
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    /// A frame of 64 bytes carrying `sequence` (broadcast, a local experimental EtherType).
    static func frame(_ sequence: Int, into frame: UnsafeMutableRawBufferPointer) {
        frame.initializeMemory(as: UInt8.self, repeating: 0)
        for byte in 0..<6 { frame[byte] = 0xff }
        frame[12] = 0x88; frame[13] = 0xb5
        frame.storeBytes(of: UInt32(sequence), toByteOffset: 14, as: UInt32.self)
    }

    @Test("two ports back to back: 300 frames sent by one are exactly the 300 payloads the other receives, in order, through a ring that wraps")
    func twoPorts() throws {
        try Self.withPair(ringSize: 32) { transmitter, listener in
            #expect(listener.macAddress == [0x52, 0x54, 0x00, 0x12, 0x34, 0x57])
            let total = 300
            var sent = 0, received: [UInt32] = [], echoed = 0
            while received.count < total {
                let base = sent
                sent += transmitter.transmit(count: min(16, total - sent), length: 64) { index, frame in Self.frame(base + index, into: frame) }
                _ = listener.receive(count: 32) { frame in received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self)) }
                echoed += transmitter.receive(count: 32) { _ in }
            }
            #expect(received == (0..<UInt32(total)).map { $0 }, "every payload once, in order")
            #expect(echoed == 0, "the sender does not receive its own frames")
            let sentCounts = transmitter.statistics(), receivedCounts = listener.statistics()
            #expect(sentCounts.transmitted == UInt32(total) && sentCounts.received == 0)
            #expect(receivedCounts.received == UInt32(total) && receivedCounts.missed == 0)
        }
    }

    @Test("a burst larger than the ring: transmit takes ring size - 1 frames at a time; what the receiver's full ring cannot take waits, as QEMU's hub holds it, and arrives in order as it drains")
    func burstLargerThanTheRing() throws {
        try Self.withPair(ringSize: 16) { transmitter, listener in
            var sent = 0
            for _ in 0..<4 {
                let base = sent
                sent += transmitter.transmit(count: 100, length: 64) { index, frame in Self.frame(base + index, into: frame) }
            }
            #expect(sent == 60, "four bursts of 100 into a 16-descriptor ring: 15 each")
            var received: [UInt32] = []
            while listener.receive(count: 100, { frame in received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self)) }) > 0 {}
            #expect(received == (0..<60).map { UInt32($0) }, "every frame once, in order, none missed")
            #expect(listener.statistics() == (received: 60, transmitted: 0, missed: 0))
        }
    }

    /// Sends `count` frames numbered from `first` from `transmitter` and returns the numbers
    /// `listener` received meanwhile (both polled until nothing more moves).
    static func exchange(_ transmitter: E1000E, _ listener: E1000E, first: Int, count: Int) -> [UInt32] {
        var sent = 0, received: [UInt32] = [], idle = 0
        while idle < 3 {
            let base = first + sent
            let moved = transmitter.transmit(count: min(16, count - sent), length: 64) { index, frame in Self.frame(base + index, into: frame) }
            sent += moved
            let arrived = listener.receive(count: 32) { frame in received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self)) }
            idle = sent == count && arrived == 0 ? idle + 1 : 0
        }
        return received
    }

    @Test("link status: up, full duplex, 1000 Mb/s after bring-up; with the link down STATUS says so and frames are lost both ways (GPTC still counts them); back up, they arrive again")
    func linkStatus() throws {
        try Self.withPair(ringSize: 32) { transmitter, listener, faults in
            let up = E1000E.LinkStatus(isUp: true, isFullDuplex: true, megabitsPerSecond: 1000)
            #expect(transmitter.linkStatus == up && listener.linkStatus == up)
            faults.1.setLink(up: false)
            #expect(listener.linkStatus.isUp == false && transmitter.linkStatus == up)
            #expect(Self.exchange(transmitter, listener, first: 0, count: 20) == [], "nothing reaches a port whose link is down")
            #expect(Self.exchange(listener, transmitter, first: 0, count: 20) == [], "nothing leaves it either")
            #expect(transmitter.statistics().transmitted == 20 && listener.statistics() == (received: 0, transmitted: 20, missed: 0))
            faults.1.setLink(up: true)
            #expect(listener.linkStatus == up)
            #expect(Self.exchange(transmitter, listener, first: 100, count: 20) == (100..<120).map { UInt32($0) })
        }
    }

    @Test("frames lost on the way: 25 never arrive, the 40 sent after them arrive in order with the receiver's ring in step; the sender's GPTC counts all 75")
    func lostFrames() throws {
        try Self.withPair(ringSize: 16) { transmitter, listener, faults in
            _ = Self.exchange(transmitter, listener, first: 0, count: 10)
            faults.0.loseNextTransmittedFrames(count: 25)
            #expect(Self.exchange(transmitter, listener, first: 10, count: 25) == [])
            #expect(Self.exchange(transmitter, listener, first: 35, count: 40) == (35..<75).map { UInt32($0) })
            #expect(transmitter.statistics().transmitted == 75 && listener.statistics().received == 50)
        }
    }

    @Test("a stalled transmitter: transmit takes ring size - 1 frames and then none (nothing in flight is overwritten, nothing arrives); restarted, the NIC sends them all and they arrive in order")
    func stalledTransmitter() throws {
        try Self.withPair(ringSize: 16) { transmitter, listener, faults in
            faults.0.stallTransmit(true)
            var sent = 0
            for _ in 0..<3 {
                let base = sent
                sent += transmitter.transmit(count: 8, length: 64) { index, frame in Self.frame(base + index, into: frame) }
            }
            #expect(sent == 15, "a 16-descriptor ring holds 15 frames the NIC has not sent")
            #expect(transmitter.transmit(count: 8, length: 64) { _, _ in } == 0)
            var received: [UInt32] = []
            #expect(listener.receive(count: 32) { _ in } == 0, "nothing sent while stalled")
            faults.0.stallTransmit(false)
            while listener.receive(count: 32, { frame in received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self)) }) > 0 {}
            #expect(received == (0..<15).map { UInt32($0) })
            #expect(Self.exchange(transmitter, listener, first: 15, count: 30) == (15..<45).map { UInt32($0) }, "the ring goes on after the hang")
        }
    }
}
