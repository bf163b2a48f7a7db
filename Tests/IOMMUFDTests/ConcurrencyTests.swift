@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import Synchronization

/// REFERENCE.md §2 group J, on the model: two threads on one IOAS.
@Suite("J. concurrency")
struct ConcurrencyTests {
    @Test("two threads mapping and unmapping on one IOAS lose and duplicate nothing")
    func concurrentMapUnmap() async throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        let ioas = try iommufd.allocateIOAS()
        let device = try ioas.selftestAttachMockDomain()
        let rounds = 200
        let fd = iommufd.fileDescriptor.rawValue
        let ioasID = ioas.id.rawValue

        let results = await withTaskGroup(of: (mapped: Int, distinct: Bool, dataOK: Bool).self) { group in
            for worker in 0..<2 {
                group.addTask {
                    let buffer = try! kernel.mmap(address: nil, length: Int(page) * 4, protection: 3, flags: 0x22, fd: -1, offset: 0)
                    defer { try! kernel.munmap(buffer, length: Int(page) * 4) }
                    var seen = Set<UInt64>()
                    var distinct = true
                    var dataOK = true
                    var mapped = 0
                    for round in 0..<rounds {
                        var live: [IOASMapping] = []
                        for slot in 0..<4 {
                            let pointer = buffer + slot * Int(page)
                            pointer.storeBytes(of: UInt32(worker << 24 | round << 8 | slot), as: UInt32.self)
                            let mapping = try! ioas.map(UnsafeRawBufferPointer(start: pointer, count: Int(page)))
                            live.append(mapping)
                            mapped += 1
                        }
                        for (slot, mapping) in live.enumerated() {
                            // A device reading the IOVA sees this worker's buffer, not another's.
                            let bytes = kernel.deviceRead(iommufd: fd, ioas: ioasID, iova: mapping.iova.rawValue, length: 4)
                            let value = bytes.map { $0.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } }
                            if value != UInt32(worker << 24 | round << 8 | slot) { dataOK = false }
                            if round == 0 && !seen.insert(mapping.iova.rawValue).inserted { distinct = false }
                        }
                        for mapping in live { try! ioas.unmap(mapping) }
                    }
                    return (mapped, distinct, dataOK)
                }
            }
            var all: [(mapped: Int, distinct: Bool, dataOK: Bool)] = []
            for await result in group { all.append(result) }
            return all
        }
        #expect(results.map(\.mapped) == [rounds * 4, rounds * 4])
        #expect(results.allSatisfy { $0.distinct && $0.dataOK })
        let observed11 = try ioas.unmapAll()
        #expect(observed11 == 0)
        #expect(kernel.pinnedPageCount == 0)
        try iommufd.destroy(device.selftestID)
    }

    @Test("concurrent IOAS allocation hands out distinct ids")
    func concurrentAllocation() async throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        // Both batches stay alive until both are done, so no id can be reused in between.
        let spaces = await withTaskGroup(of: [IOAS].self) { group in
            for _ in 0..<2 {
                group.addTask { (0..<100).map { _ in try! iommufd.allocateIOAS() } }
            }
            var all: [IOAS] = []
            for await batch in group { all += batch }
            return all
        }
        #expect(Set(spaces.map(\.id.rawValue)).count == 200)
        #expect(kernel.leaks.liveObjects == 200)
    }
}
