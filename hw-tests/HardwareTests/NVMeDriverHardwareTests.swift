import DMAMemory
import Foundation
import IOMMUFD
import NVMe
import Testing
import VFIO

extension HardwareSuite {
    /// The NVMe driver on QEMU's nvme (1b36:0010, a 64 MiB image) through the VFIO paths:
    /// Identify, write-then-read of random LBAs with every byte checked (PRP1, PRP2 and a
    /// PRP list), shutdown and a second bring-up that reads back what the first wrote.
    @Suite("Hardware: the NVMe driver on QEMU's nvme", .enabled(if: Hardware.nvmeDevice != nil, Hardware.qemuDevicesReason), .serialized)
    struct NVMeDriverHardwareTests {
        static let paths: [VFIODevice.Path] = Hardware.hasLegacyContainer ? [.iommufdCdev, .legacyGroup] : [.iommufdCdev]

        @Test("Identify, random-LBA write-then-read (8, 16, 40 blocks), shutdown, re-open and read back", arguments: paths)
        func writeReadReopen(path: VFIODevice.Path) throws {
            let address = try #require(Hardware.nvmeDevice)
            let context = try DMAContext(path: .only(path), system: LinuxSystem())
            let claimed = try context.claim(address)
            try claimed.device.setBusMaster(true)
            let manager = try DMAMemoryManager(addressSpace: context.addressSpace)
            let data = DMAArena(region: try manager.makeRegion(length: 256 << 10, backing: .exactly(.memfd)))
            let outbound = try #require(data.allocate(40 * 512, alignment: 4096)), inbound = try #require(data.allocate(40 * 512, alignment: 4096))
            var written: [(lba: UInt64, blocks: Int, seed: Int)] = []
            do {
                let controller = try NVMeController(claimed.device, manager: manager)
                let identity = try #require(controller.identity)
                #expect(identity.vendorID == 0x1b36 && identity.modelNumber.hasPrefix("QEMU NVMe"), "\(identity)")
                let namespace = try controller.identifyNamespace(1)
                #expect(namespace.blockSize == 512 && namespace.blockCount == (64 << 20) / 512, "\(namespace)")
                try controller.createIOQueues(depth: 32)
                var generator = SystemRandomNumberGenerator()
                for (seed, blocks) in [8, 16, 40].enumerated() {
                    let lba = UInt64.random(in: 0...(namespace.blockCount - UInt64(blocks)), using: &generator) & ~7
                    let length = blocks * 512
                    for index in 0..<length { outbound.address.storeBytes(of: UInt8(truncatingIfNeeded: index &* 13 &+ seed), toByteOffset: index, as: UInt8.self) }
                    inbound.address.initializeMemory(as: UInt8.self, repeating: 0, count: length)
                    try controller.write(namespace: 1, lba: lba, blocks: blocks, blockSize: 512, from: outbound.iova)
                    try controller.read(namespace: 1, lba: lba, blocks: blocks, blockSize: 512, into: inbound.iova)
                    let differing = (0..<length).filter { inbound.address.load(fromByteOffset: $0, as: UInt8.self) != outbound.address.load(fromByteOffset: $0, as: UInt8.self) }.count
                    #expect(differing == 0, "\(differing) of \(length) bytes differ at LBA \(lba) (\(path))")
                    written.append((lba, blocks, seed))
                }
                try controller.shutdown()
            }
            // A second bring-up reads back what the first wrote.
            let controller = try NVMeController(claimed.device, manager: manager)
            try controller.createIOQueues(depth: 8)
            for (lba, blocks, seed) in written {
                inbound.address.initializeMemory(as: UInt8.self, repeating: 0, count: blocks * 512)
                try controller.read(namespace: 1, lba: lba, blocks: blocks, blockSize: 512, into: inbound.iova)
                let differing = (0..<(blocks * 512)).filter { inbound.address.load(fromByteOffset: $0, as: UInt8.self) != UInt8(truncatingIfNeeded: $0 &* 13 &+ seed) }.count
                #expect(differing == 0, "after re-open: \(differing) bytes differ at LBA \(lba)")
            }
            try controller.shutdown()
            try claimed.device.setBusMaster(false)
            data.free(outbound)
            data.free(inbound)
        }
    }
}
