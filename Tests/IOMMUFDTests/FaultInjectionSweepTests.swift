@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group K: fail the N-th call, for every N, and nothing leaks.
@Suite("K. fault injection sweep")
struct FaultInjectionSweepTests {
    /// A workload that allocates, attaches, maps (anonymous and memfd), copies and unmaps,
    /// releasing everything it took on every path, success or failure.
    static func workload(_ kernel: MockKernel) throws(IOMMUError) {
        let iommufd = try IOMMUFD(system: kernel)
        let source = try iommufd.allocateIOAS()
        let destination = try iommufd.allocateIOAS()
        let device = try source.selftestAttachMockDomain()
        defer { try? iommufd.destroy(device.selftestID) }

        let length = 4 * Int(page)
        let buffer: UnsafeMutableRawPointer
        do {
            buffer = try kernel.mmap(address: nil, length: length, protection: 3, flags: 0x22, fd: -1, offset: 0)
        } catch {
            throw IOMMUError(.mmap, error)
        }
        defer { try? kernel.munmap(buffer, length: length) }

        let memfd: Int32
        do {
            memfd = try kernel.memfdCreate("sweep", flags: 1)
        } catch {
            throw IOMMUError(.memfdCreate, error)
        }
        defer { try? kernel.close(memfd) }
        do {
            try kernel.ftruncate(memfd, length: Int64(length))
        } catch {
            throw IOMMUError(.ftruncate, error)
        }

        let mapping = try source.map(UnsafeRawBufferPointer(start: buffer, count: length))
        let fileMapping = try source.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: UInt64(length))
        let copy = try destination.copy(from: source, iova: mapping.iova, length: mapping.length)
        _ = try source.iovaRanges()
        try destination.unmap(copy)
        try source.unmap(fileMapping)
        try source.unmap(mapping)
    }

    @Test("every call of the workload, failed in turn, surfaces the injected errno and leaks nothing")
    func failEveryCall() throws {
        // Count the calls of a clean run first.
        let clean = MockKernel()
        try Self.workload(clean)
        #expect(clean.leaks.isEmpty)
        let total = clean.callCount
        #expect(total >= 18)

        var failures = 0
        for n in 1...total {
            let kernel = MockKernel()
            let injected: Errno = .noMemory
            // munmap is teardown: a munmap that fails would leak in any program, real kernel or not.
            let name = clean.trace[n - 1].name
            guard name != "munmap" else { continue }
            kernel.failNthCall(n, with: injected)
            do {
                try Self.workload(kernel)
                // A failure injected into best-effort teardown (close, destroy in a defer)
                // is swallowed by design; the run must still end clean.
                #expect(["close", "IOMMU_DESTROY", "IOMMU_TEST_CMD"].contains(name) || n > total, "call \(n) (\(name)) failed silently")
            } catch {
                failures += 1
                #expect(error.errno == injected, "call \(n) (\(name)): \(error)")
                #expect(error.operation.name == name || (name == "open" && error.operation == .open), "call \(n): expected \(name), got \(error.operation.name)")
            }
            #expect(kernel.leaks.isEmpty, "call \(n) (\(name)) leaked \(kernel.leaks)")
        }
        #expect(failures >= total - 8)
    }

    @Test("an injected failure has no effect: the same call then succeeds")
    func injectedFailureHasNoEffect() throws {
        try withMockWorld { world in
            world.kernel.failNthCall(1, with: .noSpace, operation: "IOMMU_IOAS_MAP")
            let buffer = try world.memory(pages: 1)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: page) } == .noSpace)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: page)
            let observed26 = try world.ioas.unmapAll()
            #expect(observed26 == mapping.length)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("a failure injected into close still releases the descriptor, as Linux does")
    func closeAlwaysReleases() throws {
        let kernel = MockKernel()
        let fd = try kernel.open("/dev/iommu", flags: 0o2000000, mode: 0)
        kernel.failNthCall(1, with: .interrupted, operation: "close")
        #expect(throws: Errno.interrupted) { try kernel.close(fd) }
        #expect(kernel.leaks.openFileDescriptors == 0)
        #expect(throws: Errno.badFileDescriptor) { try kernel.close(fd) }
    }
}
