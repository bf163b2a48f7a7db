import SystemPackage
@testable import DMAMemory
@_spi(Selftest) import IOMMUFD
import MockKernel
import VFIO
import Synchronization
import Testing

@Suite("DMA buffer pools: mempool semantics, caches, translation, concurrency")
struct DMABufferPoolTests {
    @Test("buffers are carved from one region: distinct, aligned, IOVA = region IOVA + offset")
    func carving() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, ioas in
            let pool = try DMABufferPool(manager: manager, bufferSize: 1500, count: 64, backing: .exactly(.memfd))
            #expect(pool.stride == 1536)
            #expect(kernel.trace.filter { $0.name == "IOMMU_IOAS_MAP_FILE" }.count == 1, "one map per region, never per buffer")
            var seen = Set<UInt64>()
            for _ in 0..<64 {
                guard let buffer = pool.get() else { Issue.record("pool ran dry early"); return }
                #expect(buffer.length == 1500 && UInt(bitPattern: buffer.address) % 64 == 0)
                #expect(pool.iova(of: buffer.address) == buffer.iova)
                #expect(pool.address(of: buffer.iova) == buffer.address)
                #expect(pool.buffer(containing: buffer.address + 1499) == buffer)
                #expect(pool.buffer(at: IOVA(buffer.iova.rawValue + 7)) == buffer)
                #expect(manager.iova(of: buffer.address) == buffer.iova)
                seen.insert(buffer.iova.rawValue)
                // The device sees what the CPU wrote.
                buffer.address.storeBytes(of: UInt32(truncatingIfNeeded: buffer.iova.rawValue), as: UInt32.self)
                #expect(kernel.deviceRead(iommufd: ioas.iommufd.fileDescriptor.rawValue, ioas: ioas.id.rawValue, iova: buffer.iova.rawValue, length: 4)
                        == withUnsafeBytes(of: UInt32(truncatingIfNeeded: buffer.iova.rawValue)) { Array($0) })
            }
            #expect(seen.count == 64)
            #expect(pool.get() == nil, "an empty pool says so")
            #expect(pool.iova(of: UnsafeRawPointer(bitPattern: 0x1000)!) == nil)
        }
    }

    @Test("bulk get is all or nothing")
    func bulkAllOrNothing() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            let pool = try DMABufferPool(manager: manager, bufferSize: 2048, count: 40, backing: .exactly(.memfd))
            let buffers = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 32)
            defer { buffers.deallocate() }
            #expect(pool.get(into: buffers))
            #expect(pool.availableCount == 8)
            #expect(!pool.get(into: buffers), "32 asked, 8 left: nothing taken")
            #expect(pool.availableCount == 8)
            pool.put(UnsafeBufferPointer(buffers))
            #expect(pool.availableCount == 40)
        }
    }

    @Test("address bursts move the same buffers in 8 bytes each; the translation gives IOVA and length")
    func addressBursts() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, ioas in
            let pool = try DMABufferPool(manager: manager, bufferSize: 1000, count: 80, backing: .exactly(.memfd))
            let burst = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 32)
            let large = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 40)
            defer { burst.deallocate(); large.deallocate() }
            var cache = pool.makeCache(size: 16)
            let translation = cache.translation
            let gotBurst = cache.get(into: burst)
            #expect(gotBurst && cache.cachedCount + pool.availableCount == 48)
            #expect(Set(burst).count == 32)
            for address in burst {
                let buffer = translation.buffer(address)
                #expect(buffer.length == 1000 && buffer.address == address.pointer)
                #expect(translation.iova(of: address) == buffer.iova)
                #expect(pool.buffer(containing: address.pointer) == buffer)
                #expect(manager.iova(of: address.pointer) == buffer.iova)
                #expect(DMABufferAddress(buffer) == address)
                // The device sees the bytes at the translated IOVA.
                address.pointer.storeBytes(of: UInt16(truncatingIfNeeded: buffer.iova.rawValue >> 6), as: UInt16.self)
                #expect(kernel.deviceRead(iommufd: ioas.iommufd.fileDescriptor.rawValue, ioas: ioas.id.rawValue, iova: buffer.iova.rawValue, length: 2)
                        == withUnsafeBytes(of: UInt16(truncatingIfNeeded: buffer.iova.rawValue >> 6)) { Array($0) })
            }
            let gotLarge = cache.get(into: large)
            #expect(gotLarge, "more than the cache holds: straight from the pool")
            #expect(Set(burst).isDisjoint(with: Set(large)))
            let gotMore = cache.get(into: burst)
            #expect(!gotMore && cache.cachedCount + pool.availableCount == 8, "32 asked, 8 left: nothing taken")
            cache.put(UnsafeBufferPointer(large))
            #expect(cache.cachedCount + pool.availableCount == 48)
            cache.flushAll()
            #expect(pool.get(into: burst), "the pool's own address path")
            #expect(!pool.get(into: large) && pool.availableCount == 16, "40 asked, 16 left: nothing taken")
            pool.put(UnsafeBufferPointer(burst))
            #expect(pool.availableCount == 48)
        }
    }

    @Test("putting back an address one byte before the pool stops the program")
    func addressBeforePoolTraps() async {
        await #expect(processExitsWith: .failure) { putForeignAddress(bytesPastEnd: nil) }
    }

    @Test("putting back the first address after the pool stops the program")
    func addressAfterPoolTraps() async {
        await #expect(processExitsWith: .failure) { putForeignAddress(bytesPastEnd: 0) }
    }

    @Test("a buffer put back twice to the pool stops the program at the second put (debug builds)")
    func doublePutToPoolTraps() async {
        await #expect(processExitsWith: .failure) { putTwice("pool") }
    }

    @Test("a buffer put back twice to a cache stops the program at the second put (debug builds)")
    func doublePutToCacheTraps() async {
        await #expect(processExitsWith: .failure) { putTwice("cache") }
    }

    @Test("one buffer twice in a burst put back to a cache stops the program (debug builds)")
    func doublePutInBurstTraps() async {
        await #expect(processExitsWith: .failure) { putTwice("cache-bulk") }
    }

    @Test("putting back an address inside the pool but between two buffer starts stops the program")
    func offBoundaryAddressTraps() async {
        await #expect(processExitsWith: .failure) { putOffBoundaryAddress() }
    }

    @Test("the boundary check knows every buffer start and nothing between, for odd and power-of-two strides, one at a time and in bursts",
          arguments: [(1500, 64), (64, 64), (1000, 8), (2048, 64), (3, 1)])
    func boundaryCheck(bufferSize: Int, alignment: Int) {
        let stride = (bufferSize + alignment - 1) & ~(alignment - 1)
        let count = 37
        let base: UInt = 0x7f00_0000_0000
        let translation = DMABufferTranslation(baseAddress: base, baseIOVA: 0x10_0000, span: UInt(stride * count),
                                               bufferSize: bufferSize, stride: stride)
        var wrong: [Int] = []
        var wrongInBurst: [Int] = []
        // A burst of valid starts around the address under test, so that the burst checks
        // (one loop for power-of-two strides, one for the others) see it among good ones.
        var burst = [DMABufferAddress](repeating: DMABufferAddress(bitPattern: base), count: 9)
        var buffers = [DMABuffer](repeating: translation.buffer(DMABufferAddress(bitPattern: base)), count: 9)
        var staged = [UInt](repeating: 0, count: 9)
        for offset in -stride..<(stride * (count + 1)) {
            let address = UInt(Int(base) + offset)
            let expected = offset >= 0 && offset < stride * count && offset % stride == 0
            if offset >= 0, offset < stride * count {
                let owned = translation.owns(DMABuffer(address: UnsafeMutableRawPointer(bitPattern: address)!, iova: IOVA(0), length: bufferSize))
                if owned != expected { wrong.append(offset) }
            }
            // At index 4 (in the vector loop of the address path) and 8 (in its scalar tail).
            for position in [4, 8] {
                for index in 0..<9 { burst[index] = DMABufferAddress(bitPattern: base + UInt((index * 5 % count) * stride)) }
                burst[position] = DMABufferAddress(bitPattern: address)
                for index in 0..<9 { buffers[index] = DMABuffer(address: UnsafeMutableRawPointer(bitPattern: burst[index].bitPattern)!, iova: IOVA(0), length: bufferSize) }
                let admitted = translation.admit(burst, into: &staged, count: 9)
                let compressed = translation.compress(buffers, into: &staged, count: 9)
                if admitted != expected || compressed != expected { wrongInBurst.append(offset) }
                if admitted && staged.map({ DMABufferAddress(bitPattern: $0) }) != burst { wrongInBurst.append(offset) }
            }
        }
        #expect(wrong.count == 0, "offsets judged wrongly, the first: \(Array(wrong.prefix(8)))")
        #expect(wrongInBurst.count == 0, "offsets judged wrongly in a burst, the first: \(Array(wrongInBurst.prefix(8)))")
    }

    @Test("the last byte of the last buffer is inside: its buffer goes back")
    func lastBufferIsInside() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            let pool = try DMABufferPool(manager: manager, bufferSize: 64, count: 8, backing: .exactly(.memfd))
            var last: DMABuffer?
            for _ in 0..<8 { last = pool.get() }
            let burst = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 1)
            defer { burst.deallocate() }
            burst[0] = DMABufferAddress(last!)
            #expect(last!.address + 63 == pool.region.address + pool.stride * pool.count - 1)
            pool.put(UnsafeBufferPointer(burst))
            #expect(pool.availableCount == 1)
        }
    }

    @Test("a cache serves from itself, refills and flushes in batches, and gives everything back when dropped")
    func cache() throws {
        let kernel = memoryMachine()
        try withManager(kernel) { manager, _ in
            let pool = try DMABufferPool(manager: manager, bufferSize: 256, count: 100, backing: .exactly(.memfd))
            do {
                var cache = pool.makeCache(size: 8)
                let first = cache.get()
                #expect(first != nil && cache.cachedCount == 7 && pool.availableCount == 92, "one refill of 8")
                var taken: [DMABuffer] = first.map { [$0] } ?? []
                for _ in 0..<20 { if let buffer = cache.get() { taken.append(buffer) } }
                #expect(Set(taken).count == 21)
                for buffer in taken { cache.put(buffer) }
                #expect(cache.cachedCount <= 16, "the cache holds at most twice its size")
                #expect(cache.cachedCount + pool.availableCount == 100)
                let bulk = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 50)
                let more = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 60)
                defer { bulk.deallocate(); more.deallocate() }
                let gotFifty = cache.get(into: bulk)
                #expect(gotFifty, "larger than the cache: straight from the pool")
                let gotSixty = cache.get(into: more)
                #expect(!gotSixty && cache.cachedCount + pool.availableCount == 50, "60 asked, 50 left: all or nothing")
                cache.put(UnsafeBufferPointer(bulk))
                #expect(cache.cachedCount + pool.availableCount == 100)
            }
            #expect(pool.availableCount == 100, "a dropped cache returns its buffers")
        }
    }

    @Test("a hugepage-backed pool maps its region by file at 2 MiB alignment")
    func hugePagePool() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 2])
        try withManager(kernel) { manager, _ in
            let pool = try DMABufferPool(manager: manager, bufferSize: 4096, count: 512, backing: .exactly(.hugetlbMemfd(.huge2MiB)))
            let byFile = pool.region.mappedByFile
            let store = pool.region.memory.store
            #expect(byFile && store == .hugetlbMemfd(.huge2MiB))
            #expect(pool.region.iova.rawValue % twoMiB == 0)
            #expect(kernel.freeHugePages(twoMiB) == 1)
        }
        #expect(kernel.freeHugePages(twoMiB) == 2)
    }

    @Test("four threads with their own caches never hold the same buffer, and every buffer comes back")
    func concurrentCaches() async throws {
        let kernel = memoryMachine()
        let iommufd = try IOMMUFD(system: kernel)
        let ioas = try iommufd.allocateIOAS()
        let manager = try DMAMemoryManager(addressSpace: .iommufd(ioas))
        let pool = try DMABufferPool(manager: manager, bufferSize: 64, count: 1024, backing: .exactly(.memfd))
        let ledger = OwnershipLedger(count: 1024)
        await withTaskGroup(of: Void.self) { group in
            for thread in 1...4 {
                group.addTask {
                    let owners = ledger.owners
                    let conflicts = ledger
                    var cache = pool.makeCache(size: 16)
                    var held: [DMABuffer] = []
                    let bulk = UnsafeMutableBufferPointer<DMABuffer>.allocate(capacity: 24)
                    defer { bulk.deallocate() }
                    var random = UInt64(thread) &* 0x9e37_79b9_7f4a_7c15
                    for _ in 0..<20_000 {
                        random = random &* 6364136223846793005 &+ 1442695040888963407
                        switch random >> 62 {
                        case 0: if let buffer = cache.get() { held.append(buffer) }
                        case 1: if cache.get(into: bulk) { held.append(contentsOf: bulk) }
                        default:
                            if !held.isEmpty {
                                let buffer = held.removeLast()
                                let index = Int(buffer.iova.rawValue - pool.region.iova.rawValue) / pool.stride
                                if !owners[index].compareExchange(expected: thread, desired: 0, ordering: .relaxed).exchanged { conflicts.conflict() }
                                cache.put(buffer)
                            }
                            continue
                        }
                        // Claim what was just taken.
                        for buffer in held.suffix(random >> 62 == 0 ? 1 : 24) {
                            let index = Int(buffer.iova.rawValue - pool.region.iova.rawValue) / pool.stride
                            if owners[index].load(ordering: .relaxed) == thread { continue }
                            if !owners[index].compareExchange(expected: 0, desired: thread, ordering: .relaxed).exchanged { conflicts.conflict() }
                        }
                    }
                    for buffer in held {
                        let index = Int(buffer.iova.rawValue - pool.region.iova.rawValue) / pool.stride
                        owners[index].store(0, ordering: .relaxed)
                        cache.put(buffer)
                    }
                }
            }
        }
        #expect(ledger.conflicts.load(ordering: .relaxed) == 0, "two threads held one buffer")
        #expect(pool.availableCount == 1024, "every buffer is back")
    }
}

/// Takes a burst of four through a cache, lets `replace` swap one address for a bad one,
/// and puts the burst back: the put must stop the program.
func putBadAddress(bufferSize: Int, _ replace: (DMABufferPool, inout UnsafeMutableBufferPointer<DMABufferAddress>) -> Void) {
    do {
        let kernel = memoryMachine()
        let iommufd = try IOMMUFD(system: kernel)
        let manager = try DMAMemoryManager(addressSpace: .iommufd(try iommufd.allocateIOAS()))
        let pool = try DMABufferPool(manager: manager, bufferSize: bufferSize, count: 8, backing: .exactly(.memfd))
        var cache = pool.makeCache(size: 4)
        var burst = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 4)
        guard cache.get(into: burst) else { return }
        replace(pool, &burst)
        cache.put(UnsafeBufferPointer(burst))
    } catch {
        // Setting up failed: exit normally, so the exit test reports it.
    }
}

/// Takes one buffer and puts it back twice, through the pool, a cache, or a cache's bulk path.
func putTwice(_ path: String) {
    do {
        let kernel = memoryMachine()
        let iommufd = try IOMMUFD(system: kernel)
        let manager = try DMAMemoryManager(addressSpace: .iommufd(try iommufd.allocateIOAS()))
        let pool = try DMABufferPool(manager: manager, bufferSize: 256, count: 16, backing: .exactly(.memfd))
        // Held and never returned: room in the common store, so only the record of
        // outstanding buffers (not a full store) can catch the second put.
        let held = (0..<4).compactMap { _ in pool.get() }
        guard held.count == 4 else { return }
        switch path {
        case "pool":
            guard let buffer = pool.get() else { return }
            pool.put(buffer)
            pool.put(buffer)
        case "cache":
            var cache = pool.makeCache(size: 4)
            guard let buffer = cache.get() else { return }
            cache.put(buffer)
            cache.put(buffer)
        default:
            var cache = pool.makeCache(size: 4)
            let burst = UnsafeMutableBufferPointer<DMABufferAddress>.allocate(capacity: 2)
            guard cache.get(into: burst) else { return }
            burst[1] = burst[0]  // the same buffer twice in one burst
            cache.put(UnsafeBufferPointer(burst))
        }
    } catch {
        // Setting up failed: exit normally, so the exit test reports it.
    }
}

/// An address outside the pool: one byte before its first buffer, or `bytesPastEnd` after its last.
func putForeignAddress(bytesPastEnd: Int?) {
    putBadAddress(bufferSize: 64) { pool, burst in
        let first = pool.region.address
        let outside = bytesPastEnd.map { first + pool.stride * pool.count + $0 } ?? first - 1
        burst[2] = DMABufferAddress(DMABuffer(address: outside, iova: IOVA(0), length: 64))
    }
}

/// An address 8 bytes into one of the pool's buffers: inside the pool, not a buffer start.
func putOffBoundaryAddress() {
    putBadAddress(bufferSize: 1500) { pool, burst in
        let inside = pool.translation.buffer(burst[1]).address + 8
        burst[1] = DMABufferAddress(DMABuffer(address: inside, iova: IOVA(0), length: 1500))
    }
}

/// One owner word per buffer: a thread claims it on get and clears it on put.
final class OwnershipLedger: @unchecked Sendable {
    let owners: UnsafeMutablePointer<Atomic<Int>>
    let conflicts = Atomic<Int>(0)

    init(count: Int) {
        owners = .allocate(capacity: count)
        for index in 0..<count { (owners + index).initialize(to: Atomic(0)) }
    }

    deinit { owners.deallocate() }

    func conflict() { conflicts.add(1, ordering: .relaxed) }
}
