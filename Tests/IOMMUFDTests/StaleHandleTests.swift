import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// A destroyed handle never acts on another object: the kernel gives the lowest free id
/// to the next object it allocates, so a stale IOAS handle would otherwise map into, unmap
/// from or destroy an unrelated newer IOAS.
@Suite("stale handles")
struct StaleHandleTests {
    @Test("a destroyed IOAS handle refuses every call with ENOENT, issues nothing, and the newer IOAS with its id is untouched")
    func destroyedHandleNeverReachesTheNewObject() throws {
        try withMockWorld { world in
            let stale = try world.iommufd.allocateIOAS()
            let staleID = stale.id
            try stale.destroy()
            let newer = try world.iommufd.allocateIOAS()
            #expect(newer.id == staleID, "the kernel reuses the lowest free id")
            let memory = try world.memory(pages: 4)
            defer { try? world.release(memory, pages: 4) }
            let mapping = try newer.map(userAddress: world.address(memory), length: 4 * page)

            world.kernel.clearTrace()
            let calls: [(IOMMUOperation, () throws(IOMMUError) -> Void)] = [
                (.ioasMap, { () throws(IOMMUError) in _ = try stale.map(userAddress: world.address(memory), length: page) }),
                (.ioasUnmap, { () throws(IOMMUError) in _ = try stale.unmapAll() }),
                (.ioasIOVARanges, { () throws(IOMMUError) in _ = try stale.iovaRanges() }),
                (.ioasAllowIOVAs, { () throws(IOMMUError) in try stale.allowIOVAs([]) }),
                (.option, { () throws(IOMMUError) in try stale.setHugePages(false) }),
                (.ioasCopy, { () throws(IOMMUError) in _ = try stale.copy(from: newer, iova: mapping.iova, length: page) }),
                (.ioasCopy, { () throws(IOMMUError) in _ = try newer.copy(from: stale, iova: mapping.iova, length: page) }),
                (.testCommand, { () throws(IOMMUError) in _ = try stale.selftestAttachMockDomain() }),
                (.destroy, { () throws(IOMMUError) in try stale.destroy() }),
            ]
            for (operation, call) in calls {
                do throws(IOMMUError) {
                    try call()
                    Issue.record("\(operation.name) through a destroyed handle succeeded")
                } catch {
                    #expect(error.errno == .noSuchFileOrDirectory && error.operation == operation)
                    #expect(error.context.handleWasDestroyed)
                    #expect(error.explanation?.meaning.contains("already destroyed through this handle") == true)
                }
            }
            #expect(world.kernel.trace.isEmpty, "no call reached the kernel: \(world.kernel.trace)")
            #expect(try newer.unmapAll() == 4 * page, "the newer IOAS kept its mapping")
        }
    }

    @Test("a destroy the kernel refuses (EBUSY) leaves the handle usable")
    func refusedDestroyKeepsTheHandle() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            #expect(errnoOf { try world.ioas.destroy() } == .resourceBusy)
            #expect(try world.ioas.iovaRanges().alignment == 2048, "still usable after EBUSY")
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("two threads destroying one handle issue IOMMU_DESTROY once")
    func concurrentDestroyIssuesOnce() async throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        for _ in 0..<50 {
            let ioas = try iommufd.allocateIOAS()
            kernel.clearTrace()
            let results = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<2 {
                    group.addTask { (try? ioas.destroy()) != nil }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1)
            #expect(kernel.trace.filter { $0.name == IOMMUOperation.destroy.name }.count == 1)
        }
    }
}
