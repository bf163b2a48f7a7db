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
    }
}
