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
}
