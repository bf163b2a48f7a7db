import DMAMemory
import IOMMUFD
import MockKernel
import NVMe
import SystemPackage
import Testing
import VFIO

/// The NVMe driver unchanged against MockKernel's NVMe controller model
/// (`installNVMeModel`): bring-up, Identify, I/O queues, PRP1/PRP2/PRP-list transfers
/// written and read back byte for byte, the status codes a driver must handle, shutdown.
@Suite("the NVMe driver on MockKernel's controller")
struct NVMeDriverTests {
    static let address = "0000:00:04.0"

    /// A machine with the nvme preset playing a controller; `body` gets the driver and an arena for data.
    static func withController(_ body: (NVMeController, DMAArena) throws -> Void) throws {
        try withController { controller, data, _, _ in try body(controller, data) }
    }

    /// As above, with the model's fault handle and a way to bring the controller up again.
    static func withController(_ body: (NVMeController, DMAArena, MockNVMeController, () throws -> NVMeController) throws -> Void) throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.nvme())
        configuration.memlockLimit = nil
        let kernel = MockKernel(configuration: configuration)
        let faults = kernel.installNVMeModel(address, blockCount: 2048, blockSize: 512, maximumDataTransferShift: 5)
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            let claimed = try context.claim(try PCIAddress(parsing: address))
            try claimed.device.setBusMaster(true)
            let manager = try DMAMemoryManager(addressSpace: context.addressSpace)
            let controller = try NVMeController(claimed.device, manager: manager, timeout: 2)
            let data = DMAArena(region: try manager.makeRegion(length: 1 << 20, backing: .exactly(.memfd)))
            try body(controller, data, faults) { try NVMeController(claimed.device, manager: manager, timeout: 0.2) }
            try claimed.device.setBusMaster(false)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    @Test("a completion's status field decodes bit by bit: phase (0), SC (8:1), SCT (11:9), CRD (13:12), M (14), DNR (15)")
    func statusField() {
        let unrecovered = NVMeStatus(raw: 1 | 0x81 << 1 | 2 << 9 | 1 << 12 | 1 << 14 | 1 << 15)
        #expect(unrecovered == NVMeStatus(codeType: 2, code: 0x81, doNotRetry: true, more: true, retryDelay: 1))
        #expect(unrecovered.description == "SCT 2 SC 0x81 CRD 1 M DNR" && !unrecovered.isSuccess)
        #expect(NVMeStatus(raw: 1) == NVMeStatus(codeType: 0, code: 0) && NVMeStatus(raw: 1).isSuccess, "the phase bit is not the status")
        #expect(NVMeStatus(raw: 0x71 << 1 | 3 << 9) == .abortedByHost)
        #expect(NVMeStatus(raw: 3 << 12).retryDelay == 3 && NVMeStatus(raw: 3 << 12).isSuccess)
    }

    @Test("bring-up and Identify: the controller's model, one namespace of 2048 blocks of 512 bytes, MDTS 5")
    func identify() throws {
        try Self.withController { controller, _ in
            let identity = try #require(controller.identity)
            #expect(identity.vendorID == 0x1b36 && identity.modelNumber == "QEMU NVMe Ctrl" && identity.serialNumber == "deadbeef")
            #expect(identity.namespaceCount == 1 && identity.maximumDataTransferShift == 5)
            #expect(try controller.identifyNamespace(1) == NVMeNamespaceIdentity(blockCount: 2048, blockSize: 512))
            #expect(try controller.activeNamespaces() == [1])
            let refused = nvmeCommandFailure("Identify of namespace 2") { _ = try controller.identifyNamespace(2) }?.status
            #expect(refused?.codeType == 0 && refused?.code == 0x0b, "Invalid Namespace or Format")
            try controller.shutdown()
        }
    }

    @Test("writes then reads back every byte: one page (PRP1), two (PRP2), five and 32 (a PRP list), at random LBAs", arguments: [8, 16, 40, 256])
    func writeThenRead(blocks: Int) throws {
        try Self.withController { controller, data in
            try controller.createIOQueues(depth: 16)
            let length = blocks * 512
            let outbound = try #require(data.allocate(length, alignment: 4096)), inbound = try #require(data.allocate(length, alignment: 4096))
            var generator = SystemRandomNumberGenerator()
            for round in 0..<3 {
                let lba = UInt64.random(in: 0...UInt64(2048 - blocks), using: &generator)
                for index in 0..<length { outbound.address.storeBytes(of: UInt8(truncatingIfNeeded: index &* 31 &+ round &+ Int(lba)), toByteOffset: index, as: UInt8.self) }
                inbound.address.initializeMemory(as: UInt8.self, repeating: 0, count: length)
                try controller.write(namespace: 1, lba: lba, blocks: blocks, blockSize: 512, from: outbound.iova)
                try controller.read(namespace: 1, lba: lba, blocks: blocks, blockSize: 512, into: inbound.iova)
                let differing = (0..<length).filter { inbound.address.load(fromByteOffset: $0, as: UInt8.self) != outbound.address.load(fromByteOffset: $0, as: UInt8.self) }.count
                #expect(differing == 0, "\(differing) of \(length) bytes differ at LBA \(lba)")
            }
            data.free(outbound)
            data.free(inbound)
            try controller.shutdown()
        }
    }

    @Test("the status paths: LBAs past the namespace (SCT 0 SC 0x80), more than MDTS refused by the driver, I/O before its queues")
    func statusPaths() throws {
        try Self.withController { controller, data in
            let buffer = try #require(data.allocate(4096, alignment: 4096))
            #expect(throws: NVMeError.self) { try controller.read(namespace: 1, lba: 0, blocks: 1, blockSize: 512, into: buffer.iova) }
            try controller.createIOQueues(depth: 4)
            let past = nvmeCommandFailure("a read past the namespace") { try controller.read(namespace: 1, lba: 2047, blocks: 2, blockSize: 512, into: buffer.iova) }?.status
            #expect(past?.codeType == 0 && past?.code == 0x80)
            #expect(throws: NVMeError.self) { try controller.read(namespace: 1, lba: 0, blocks: 512, blockSize: 512, into: buffer.iova) }
            // The queue wraps (depth 4) and keeps its phase right.
            for lba in 0..<10 { try controller.read(namespace: 1, lba: UInt64(lba), blocks: 1, blockSize: 512, into: buffer.iova) }
            data.free(buffer)
            try controller.shutdown()
        }
    }

    @Test("queue depth 12 on a 16-entry queue: twelve writes then twelve reads in flight, each reaped once, every byte back")
    func queueDepth() throws {
        try Self.withController { controller, data in
            try controller.createIOQueues(depth: 16)
            let count = 12
            let outbound = try (0..<count).map { _ in try #require(data.allocate(4096, alignment: 4096)) }
            let inbound = try (0..<count).map { _ in try #require(data.allocate(4096, alignment: 4096)) }
            for (index, slice) in outbound.enumerated() {
                for byte in 0..<4096 { slice.address.storeBytes(of: UInt8(truncatingIfNeeded: byte &+ index &* 7), toByteOffset: byte, as: UInt8.self) }
            }
            for transfer in [NVMeController.Transfer.write, .read] {
                var pending = Set<UInt16>()
                for index in 0..<count {
                    let buffer = transfer == .write ? outbound[index] : inbound[index]
                    pending.insert(try controller.submit(transfer, namespace: 1, lba: UInt64(index * 8), blocks: 8, blockSize: 512, iova: buffer.iova))
                }
                #expect(controller.outstanding == count)
                #expect(throws: NVMeError.self) {
                    for _ in 0..<4 { _ = try controller.submit(.read, namespace: 1, lba: 0, blocks: 8, blockSize: 512, iova: inbound[0].iova) }
                }
                while controller.outstanding > 0 {
                    controller.reapCompletions { id, status in
                        #expect(status.isSuccess)
                        pending.remove(id)
                    }
                }
            }
            for index in 0..<count {
                let same = (0..<4096).allSatisfy { inbound[index].address.load(fromByteOffset: $0, as: UInt8.self) == outbound[index].address.load(fromByteOffset: $0, as: UInt8.self) }
                #expect(same, "buffer \(index)")
            }
            for slice in outbound + inbound { data.free(slice) }
            try controller.shutdown()
        }
    }

    @Test("injected faults: a media error completes the command with SCT 2 SC 0x81 and the next I/O works; a command the controller never completes times out, and a new bring-up recovers")
    func injectedFaults() throws {
        try Self.withController { controller, data, faults, bringUp in
            try controller.createIOQueues(depth: 8)
            let buffer = try #require(data.allocate(4096, alignment: 4096))
            faults.failNextIO(codeType: 2, code: 0x81)
            let media = nvmeCommandFailure("the read with an injected media error") { try controller.read(namespace: 1, lba: 0, blocks: 8, blockSize: 512, into: buffer.iova) }
            #expect(media?.opcode == NVMeOpcode.read && media?.status.codeType == 2 && media?.status.code == 0x81)
            try controller.read(namespace: 1, lba: 0, blocks: 8, blockSize: 512, into: buffer.iova)

            faults.dropNextIO()
            let recovered = try bringUp()  // a short timeout
            try recovered.createIOQueues(depth: 8)
            do {
                try recovered.write(namespace: 1, lba: 8, blocks: 8, blockSize: 512, from: buffer.iova)
                Issue.record("a command never completed did not time out")
            } catch let error as NVMeError {
                guard case .timedOut = error else { Issue.record("\(error)"); return }
            }
            let again = try bringUp()
            try again.createIOQueues(depth: 8)
            buffer.address.initializeMemory(as: UInt8.self, repeating: 0x5a, count: 4096)
            try again.write(namespace: 1, lba: 16, blocks: 8, blockSize: 512, from: buffer.iova)
            #expect(faults.namespaceBytes[(16 * 512)..<(24 * 512)].allSatisfy { $0 == 0x5a }, "the recovered controller writes")
            try again.shutdown()
            data.free(buffer)
        }
    }
}
