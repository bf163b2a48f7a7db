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
                #expect(try controller.activeNamespaces() == [1], "QEMU's nvme: one drive, one namespace")
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

        @Test("queue depth 8: eight 4 KiB writes then eight reads in flight at random LBAs, every byte back")
        func queueDepthEight() throws {
            let address = try #require(Hardware.nvmeDevice)
            let context = try DMAContext(path: .only(.iommufdCdev), system: LinuxSystem())
            let claimed = try context.claim(address)
            try claimed.device.setBusMaster(true)
            let manager = try DMAMemoryManager(addressSpace: context.addressSpace)
            let data = DMAArena(region: try manager.makeRegion(length: 128 << 10, backing: .exactly(.memfd)))
            let controller = try NVMeController(claimed.device, manager: manager)
            try controller.createIOQueues(depth: 16)
            let buffers = try (0..<16).map { _ in try #require(data.allocate(4096, alignment: 4096)) }
            var generator = SystemRandomNumberGenerator()
            let lbas = (0..<8).map { UInt64($0) * 4096 + UInt64.random(in: 0..<512, using: &generator) * 8 }
            for index in 0..<8 {
                for byte in 0..<4096 { buffers[index].address.storeBytes(of: UInt8(truncatingIfNeeded: byte &* 3 &+ index), toByteOffset: byte, as: UInt8.self) }
                buffers[8 + index].address.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
            }
            for transfer in [NVMeController.Transfer.write, .read] {
                for index in 0..<8 {
                    _ = try controller.submit(transfer, namespace: 1, lba: lbas[index], blocks: 8, blockSize: 512,
                                              iova: buffers[transfer == .write ? index : 8 + index].iova)
                }
                let deadline = Date().addingTimeInterval(10)
                var failures = 0
                while controller.outstanding > 0 && Date() < deadline {
                    controller.reapCompletions { _, status in if !status.isSuccess { failures += 1 } }
                }
                #expect(controller.outstanding == 0 && failures == 0)
            }
            for index in 0..<8 {
                let same = (0..<4096).allSatisfy { buffers[8 + index].address.load(fromByteOffset: $0, as: UInt8.self) == buffers[index].address.load(fromByteOffset: $0, as: UInt8.self) }
                #expect(same, "LBA \(lbas[index])")
            }
            try controller.shutdown()
            try claimed.device.setBusMaster(false)
            for slice in buffers { data.free(slice) }
        }

        @Test("a driver dropped with eight writes in flight quiesces them before it disables the controller; a new bring-up's I/O reads back what it wrote")
        func resetMidIO() throws {
            let address = try #require(Hardware.nvmeDevice)
            let context = try DMAContext(path: .only(.iommufdCdev), system: LinuxSystem())
            let claimed = try context.claim(address)
            try claimed.device.setBusMaster(true)
            let manager = try DMAMemoryManager(addressSpace: context.addressSpace)
            let data = DMAArena(region: try manager.makeRegion(length: 64 << 10, backing: .exactly(.memfd)))
            let outbound = try #require(data.allocate(4096, alignment: 4096)), inbound = try #require(data.allocate(4096, alignment: 4096))
            outbound.address.initializeMemory(as: UInt8.self, repeating: 0xa5, count: 4096)
            do {
                let first = try NVMeController(claimed.device, manager: manager)
                try first.createIOQueues(depth: 16)
                for index in 0..<8 { _ = try first.submit(.write, namespace: 1, lba: UInt64(64 + 8 * index), blocks: 8, blockSize: 512, iova: outbound.iova) }
            }
            let second = try NVMeController(claimed.device, manager: manager)
            try second.createIOQueues(depth: 16)
            outbound.address.initializeMemory(as: UInt8.self, repeating: 0x3c, count: 4096)
            for index in 0..<8 {
                inbound.address.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
                try second.write(namespace: 1, lba: UInt64(64 + 8 * index), blocks: 8, blockSize: 512, from: outbound.iova)
                try second.read(namespace: 1, lba: UInt64(64 + 8 * index), blocks: 8, blockSize: 512, into: inbound.iova)
                #expect((0..<4096).allSatisfy { inbound.address.load(fromByteOffset: $0, as: UInt8.self) == 0x3c }, "LBA \(64 + 8 * index)")
            }
            try second.shutdown()
            try claimed.device.setBusMaster(false)
            data.free(outbound)
            data.free(inbound)
        }
    }
}
