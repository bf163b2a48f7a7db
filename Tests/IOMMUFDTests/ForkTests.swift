import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO

/// A handle made before a `fork()` refuses to act in the child. The kernel would let the
/// child reach the parent's objects through the inherited descriptors (they are the same
/// open files), so a child that merely drops a handle would unmap the parent's DMA,
/// destroy its page tables or clear its device's Bus Master Enable. The real fork runs in
/// the VM lane (ProcessFaultTests); here MockKernel continues as the child.
@Suite("handles after fork")
struct ForkTests {
    /// Whether `error` is the fork refusal for `operation`, with its explanation.
    static func isForkRefusal(_ error: IOMMUError, _ operation: IOMMUOperation) -> Bool {
        error.operation == operation && error.errno == .notPermitted && error.context.handleFromBeforeFork
            && error.explanation?.meaning.contains("made before a fork()") == true
    }

    @Test("iommufd handles made in the parent refuse every call in the child with EPERM, issue nothing, and a handle the child makes works")
    func iommufdHandlesRefuseInTheChild() throws {
        try withMockWorld { world in
            let memory = try world.memory(pages: 4)
            let mapping = try world.ioas.map(userAddress: world.address(memory), length: 4 * page)
            let parentGeneration = world.kernel.processGeneration
            world.kernel.continueAsForkedChild()
            #expect(world.kernel.processGeneration != parentGeneration)
            world.kernel.clearTrace()
            let calls: [(IOMMUOperation, () throws(IOMMUError) -> Void)] = [
                (.ioasMap, { () throws(IOMMUError) in _ = try world.ioas.map(userAddress: world.address(memory), length: page) }),
                (.ioasUnmap, { () throws(IOMMUError) in try world.ioas.unmap(mapping) }),
                (.ioasIOVARanges, { () throws(IOMMUError) in _ = try world.ioas.iovaRanges() }),
                (.ioasAlloc, { () throws(IOMMUError) in _ = try world.iommufd.allocateIOAS() }),
                (.testCommand, { () throws(IOMMUError) in _ = try world.ioas.selftestAttachMockDomain() }),
                (.destroy, { () throws(IOMMUError) in try world.ioas.destroy() }),
            ]
            for (operation, call) in calls {
                do throws(IOMMUError) {
                    try call()
                    Issue.record("\(operation.name) through a parent's handle succeeded in the child")
                } catch {
                    #expect(Self.isForkRefusal(error, operation), "\(error)")
                }
            }
            #expect(world.kernel.trace.isEmpty, "no call reached the kernel: \(world.kernel.trace)")
            // The child's own context works.
            do {
                let own = try IOMMUFD(system: world.kernel)
                let ioas = try own.allocateIOAS()
                #expect(try ioas.iovaRanges().ranges.count == 1)
            }
            try world.release(memory, pages: 4)
        }
    }

    @Test("dropping a parent's handle in the child issues nothing: the IOAS is not destroyed, only descriptors close")
    func deinitInTheChildIssuesNothing() throws {
        let kernel = MockKernel()
        let iommufd = try IOMMUFD(system: kernel)
        do {
            let ioas = try iommufd.allocateIOAS()
            kernel.continueAsForkedChild()
            kernel.clearTrace()
            _ = ioas
        }
        #expect(!kernel.trace.contains { $0.name == "IOMMU_DESTROY" }, "\(kernel.trace)")
        #expect(kernel.leaks.liveObjects == 1, "the parent's IOAS lives on")
    }

    @Test("a VFIO device claimed in the parent: config reads and writes, reset, region info and BAR mapping refuse in the child; dropping it leaves Bus Master Enable set")
    func deviceRefusesInTheChild() throws {
        let kernel = pciMachine()
        let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
        let function = try context.claim(edu)
        try function.device.setBusMaster(true)
        let bar = try function.device.region(0)
        kernel.continueAsForkedChild()
        kernel.clearTrace()
        let calls: [(IOMMUOperation, () throws(IOMMUError) -> Void)] = [
            (.pread, { () throws(IOMMUError) in _ = try function.device.readConfiguration(UInt16.self, at: 4) }),
            (.pwrite, { () throws(IOMMUError) in try function.device.writeConfiguration(UInt16(0), at: 4) }),
            (.vfioDeviceReset, { () throws(IOMMUError) in try function.device.reset() }),
            (.vfioDeviceGetRegionInfo, { () throws(IOMMUError) in _ = try function.device.region(1) }),
            (.mmap, { () throws(IOMMUError) in _ = try function.device.map(bar) }),
        ]
        for (operation, call) in calls {
            do throws(IOMMUError) {
                try call()
                Issue.record("\(operation.name) through a parent's device succeeded in the child")
            } catch {
                #expect(Self.isForkRefusal(error, operation), "\(error)")
            }
        }
        #expect(kernel.trace.isEmpty, "no call reached the kernel: \(kernel.trace)")
    }
}

@Suite("MockKernel's processes")
struct MockProcessTests {
    @Test("a spawned process has its own descriptor table and memory, shares the kernel's objects, and closes and unmaps everything when it goes")
    func spawnedProcess() throws {
        let kernel = MockKernel()
        let first = try kernel.open("/dev/iommu", flags: O_RDWR | O_CLOEXEC, mode: 0)
        do {
            let other = kernel.spawnProcess()
            #expect(other.processID() != kernel.processID())
            #expect(throws: Errno.badFileDescriptor) { try other.close(first + 100) }
            let fd = try other.open("/dev/iommu", flags: O_RDWR | O_CLOEXEC, mode: 0)
            #expect(fd == first, "a new process's lowest free descriptor is 3 again")
            var allocate = iommu_ioas_alloc()
            allocate.size = UInt32(MemoryLayout<iommu_ioas_alloc>.size)
            _ = try other.ioctl(fd, UInt(IOMMU_IOAS_ALLOC), &allocate)
            _ = try other.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            #expect(other.leaks.openFileDescriptors == 1 && other.leaks.memoryMappings == 1)
            #expect(kernel.leaks.openFileDescriptors == 1 && kernel.leaks.memoryMappings == 0, "the first process sees only its own")
            #expect(kernel.leaks.liveObjects == 1, "the kernel's objects are shared")
        }
        #expect(kernel.leaks.liveObjects == 0, "the process's exit closed its iommufd and destroyed its IOAS")
        try kernel.close(first)
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}
