import DMAMemory
import E1000E
import Foundation
import IOMMUFD
import Testing
import VFIO

extension HardwareSuite {
    /// The e1000e driver on QEMU's 82574L in MAC loopback through the VFIO paths: N frames
    /// sent come back as exactly those N payloads, in order; the statistics count them.
    @Suite("Hardware: the e1000e driver on QEMU's 82574L", .enabled(if: Hardware.e1000eDevice != nil, Hardware.qemuDevicesReason), .serialized)
    struct E1000EDriverHardwareTests {
        static let paths: [VFIODevice.Path] = Hardware.hasLegacyContainer ? [.iommufdCdev, .legacyGroup] : [.iommufdCdev]

        @Test("MAC loopback: 500 frames of 64 bytes in bursts of 32 come back in order, byte for byte", arguments: paths)
        func loopback(path: VFIODevice.Path) throws {
            let address = try #require(Hardware.e1000eDevice)
            let context = try DMAContext(path: .only(path), system: LinuxSystem())
            let claimed = try context.claim(address)
            try claimed.device.setBusMaster(true)
            let nic = try E1000E(claimed.device, manager: try DMAMemoryManager(addressSpace: context.addressSpace), ringSize: 64, loopback: true)
            #expect(nic.macAddress.count == 6 && nic.macAddress != [0, 0, 0, 0, 0, 0], "\(nic.macAddress)")
            _ = nic.statistics()  // clear the counters
            let total = 500
            var sent = 0, received: [UInt32] = [], sizes = Set<Int>()
            let deadline = Date().addingTimeInterval(20)
            while received.count < total && Date() < deadline {
                let base = sent
                sent += nic.transmit(count: min(32, total - sent), length: 64) { index, frame in
                    frame.initializeMemory(as: UInt8.self, repeating: 0)
                    for byte in 0..<6 { frame[byte] = 0xff }
                    frame[12] = 0x88; frame[13] = 0xb5
                    frame.storeBytes(of: UInt32(base + index), toByteOffset: 14, as: UInt32.self)
                }
                _ = nic.receive(count: 32) { frame in
                    sizes.insert(frame.count)
                    received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self))
                }
            }
            #expect(received == (0..<UInt32(total)).map { $0 }, "\(received.count) of \(total) frames back (\(path)); sizes \(sizes)")
            let statistics = nic.statistics()
            #expect(statistics.transmitted == UInt32(total) && statistics.received == UInt32(total), "\(statistics)")
            nic.stop()
            try claimed.device.setBusMaster(false)
        }

        /// The two e1000e QEMU's hub joins, claimed into one DMA context through `path`, each
        /// with rings of `ringSize`; stopped after `body`.
        static func withPair(_ path: VFIODevice.Path, ringSize: Int, _ body: (_ transmitter: E1000E, _ listener: E1000E) throws -> Void) throws {
            let sender = try #require(Hardware.e1000eDevice), receiver = try #require(Hardware.secondE1000EDevice, "the VM lane has two e1000e on a hub")
            let context = try DMAContext(path: .only(path), system: LinuxSystem())
            let claimedSender = try context.claim(sender), claimedReceiver = try context.claim(receiver)
            try claimedSender.device.setBusMaster(true)
            try claimedReceiver.device.setBusMaster(true)
            let manager = try DMAMemoryManager(addressSpace: context.addressSpace)
            let transmitter = try E1000E(claimedSender.device, manager: manager, ringSize: ringSize)
            let listener = try E1000E(claimedReceiver.device, manager: manager, ringSize: ringSize)
            try body(transmitter, listener)
            transmitter.stop(); listener.stop()
            try claimedSender.device.setBusMaster(false)
            try claimedReceiver.device.setBusMaster(false)
        }

        @Test("two ports on a QEMU hub: link up, full duplex, 1000 Mb/s; 500 frames sent by one are exactly the 500 payloads the other receives, in order", arguments: paths)
        func twoPorts(path: VFIODevice.Path) throws {
            try Self.withPair(path, ringSize: 64) { transmitter, listener in
            #expect(transmitter.macAddress != listener.macAddress, "\(transmitter.macAddress) \(listener.macAddress)")
            // The link as MockKernel's model reports it after bring-up.
            let up = E1000E.LinkStatus(isUp: true, isFullDuplex: true, megabitsPerSecond: 1000)
            #expect(transmitter.linkStatus == up && listener.linkStatus == up, "\(transmitter.linkStatus) \(listener.linkStatus)")
            _ = transmitter.statistics(); _ = listener.statistics()
            let total = 500
            var sent = 0, received: [UInt32] = [], echoed = 0
            let deadline = Date().addingTimeInterval(20)
            while received.count < total && Date() < deadline {
                let base = sent
                // Never more in flight than the receiver's ring holds: the hub drops what it cannot deliver.
                let room = max(0, 48 - (sent - received.count))
                sent += transmitter.transmit(count: min(32, total - sent, room), length: 64) { index, frame in
                    frame.initializeMemory(as: UInt8.self, repeating: 0)
                    for byte in 0..<6 { frame[byte] = 0xff }
                    frame[12] = 0x88; frame[13] = 0xb5
                    frame.storeBytes(of: UInt32(base + index), toByteOffset: 14, as: UInt32.self)
                }
                _ = listener.receive(count: 32) { frame in received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self)) }
                echoed += transmitter.receive(count: 32) { _ in }
            }
            #expect(received == (0..<UInt32(total)).map { $0 }, "\(received.count) of \(total) frames arrived (\(path))")
            #expect(echoed == 0, "the sender's own frames do not come back to it")
            let sentCounts = transmitter.statistics(), receivedCounts = listener.statistics()
            #expect(sentCounts.transmitted == UInt32(total) && receivedCounts.received == UInt32(total), "\(sentCounts) \(receivedCounts)")
            }
        }

        @Test("a burst larger than the receiver's ring waits in the hub and arrives in order, none missed, as the receiver drains", arguments: paths)
        func burstLargerThanTheRing(path: VFIODevice.Path) throws {
            try Self.withPair(path, ringSize: 16) { transmitter, listener in
            _ = transmitter.statistics(); _ = listener.statistics()
            var sent = 0
            let sendDeadline = Date().addingTimeInterval(10)
            while sent < 60 && Date() < sendDeadline {
                let base = sent
                sent += transmitter.transmit(count: 60 - sent, length: 64) { index, frame in
                    frame.initializeMemory(as: UInt8.self, repeating: 0)
                    for byte in 0..<6 { frame[byte] = 0xff }
                    frame[12] = 0x88; frame[13] = 0xb5
                    frame.storeBytes(of: UInt32(base + index), toByteOffset: 14, as: UInt32.self)
                }
            }
            #expect(sent == 60, "60 frames through a 16-descriptor transmit ring")
            var received: [UInt32] = []
            let deadline = Date().addingTimeInterval(10)
            while received.count < 60 && Date() < deadline {
                _ = listener.receive(count: 100) { frame in received.append(frame.loadUnaligned(fromByteOffset: 14, as: UInt32.self)) }
            }
            #expect(received == (0..<60).map { UInt32($0) }, "\(received.count) of 60 arrived (\(path))")
            let counts = listener.statistics()
            #expect(counts.received == 60 && counts.missed == 0, "\(counts)")
            }
        }
    }
}
