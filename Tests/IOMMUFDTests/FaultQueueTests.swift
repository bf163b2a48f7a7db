import CIOMMUFD
@_spi(Selftest) import IOMMUFD
@testable import MockKernel
import Scenarios
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// Fault queues and the vIOMMU's objects through the typed API on MockKernel. The VM lane
/// runs the same probes on the kernel (`FaultServingProbe`, `VIOMMUObjectsProbe`), and the
/// T and U scenarios hold each rule's errno.
@Suite("fault queues and the vIOMMU's objects on MockKernel")
struct FaultQueueTests {
    @Test("serving faults: map the page and answer, a failing handler answers INVALID, a replace answers what was read (what 7.3 answered, line by line)")
    func servingAsTheKernelAnswered() throws {
        try expectMockAnswersAsLinux(FaultServingProbe.lines, linuxAnswer: FaultServingProbe.linuxAnswer)
    }

    @Test("vDEVICE, vEVENTQ, invalidation through the vDEVICE, HW queue (what 7.3 answered, line by line)")
    func viommuObjectsAsTheKernelAnswered() throws {
        try expectMockAnswersAsLinux(VIOMMUObjectsProbe.lines, linuxAnswer: VIOMMUObjectsProbe.linuxAnswer)
    }

    @Test("a fault queue keeps the HWPTs' faults after its descriptor closes: destroy is EBUSY while a HWPT holds it (eventq.c:435, hw_pagetable.c:434)")
    func heldByHWPT() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let queue = try world.iommufd.allocateFaultQueue()
            let hwpt = try world.ioas.allocateHWPT(for: device.deviceID, faultQueue: queue)
            #expect(hwpt.faultQueue === queue)
            #expect(errnoOf { try queue.destroy() } == .resourceBusy)
            try hwpt.destroy()
            try world.iommufd.destroy(queue.id)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("a fault on a PASID attached to a fault HWPT carries the PASID and the access asked for (selftest.c:1766-1768, io-pgfault.c:118-156)")
    func readRoomAndPASID() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain(flags: .pasid)
            let queue = try world.iommufd.allocateFaultQueue()
            let rid = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.pasid])
            let hwpt = try world.ioas.allocateHWPT(for: device.deviceID, flags: [.pasid], faultQueue: queue)
            try world.iommufd.selftestReplace(device.selftestID, with: rid.id.rawValue)
            let pasid = try #require(PASID(rawValue: 2048))
            try world.iommufd.selftestAttachPASID(pasid, of: device, to: hwpt.id)
            try world.iommufd.selftestTriggerIOPF(device, pasid: pasid, permissions: [.write], address: 0x200_0000)
            let faults = try queue.read()
            #expect(faults.count == 1)
            #expect(faults.first?.pasid == 2048)
            #expect(faults.first?.permissions == [.write])
            #expect(faults.first?.address == 0x200_0000)
            #expect(faults.first?.isLastInGroup == true)
            try queue.respond(faults.map { (cookie: $0.cookie, response: .success) })
            try world.iommufd.selftestDetachPASID(pasid, of: device)
            try world.iommufd.selftestReplace(device.selftestID, with: world.ioas.id.rawValue)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("a vEVENTQ's sequence numbers wrap from Int32.max to 0 (iommufd_private.h:695-696) and a full queue keeps one lost record last, moving its sequence on")
    func sequenceWrap() throws {
        var queue = MockVEventQueue(viommuID: 1, type: IOMMU_VEVENTQ_TYPE_SELFTEST, depth: 2, sequence: UInt32(Int32.max))
        queue.report([0x99, 0, 0, 0])
        queue.report([0x99, 0, 0, 0])
        #expect(queue.records.map(\.sequence) == [UInt32(Int32.max), 0])
        queue.report([0x99, 0, 0, 0])
        queue.report([0x99, 0, 0, 0])
        #expect(queue.records.map(\.sequence) == [UInt32(Int32.max), 0, 2])
        #expect(queue.records.last?.flags == IOMMU_VEVENTQ_FLAG_LOST_EVENTS)
    }
}

/// A driver's fault handling in CI: a mock function with page requests (ATS and PRI) on a
/// HWPT with a fault queue; its DMA to an IOVA nothing maps queues a page request, the
/// serving loop maps the page and answers, and the retried DMA lands.
@Suite("page requests from a mock function, served")
struct PageRequestTests {
    @Test("unmapped IOVA: the DMA faults and queues a request; serve() maps the page and answers SUCCESS; the retry lands in the buffer")
    func servedPageRequest() throws {
        var configuration = MockKernel.Configuration()
        var function = MockKernel.PCIDevice.edu()
        function.supportsPageRequests = true
        configuration.addPCIDevice(function)
        let kernel = MockKernel(configuration: configuration)
        let address = try PCIAddress(parsing: "0000:00:02.0")
        try withClaimed(kernel, address) { ioas, claimed, _ in
            let device = try #require(claimed.device.deviceID)
            let queue = try ioas.iommufd.allocateFaultQueue()
            let hwpt = try ioas.allocateHWPT(for: device, faultQueue: queue)
            _ = try claimed.device.attach(to: hwpt)
            let memory = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)

            try claimed.device.setBusMaster(true)
            #expect(!kernel.pciDeviceWrite(address.description, iova: 0x10_0040, bytes: [1, 2, 3]), "the DMA faults")
            #expect(try queue.wait(timeout: 0), "and queues a page request")
            var mappings: [IOASMapping] = []
            let served = try queue.serve(timeout: 0) { fault in
                #expect(fault.device == device && fault.pasid == nil && fault.permissions == [.write] && fault.address == 0x10_0000)
                mappings.append(try unsafe ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: 4096, at: IOVA(fault.address)))
                return .success
            }
            #expect(served == 1)
            #expect(kernel.pciDeviceWrite(address.description, iova: 0x10_0040, bytes: [1, 2, 3]))
            #expect(unsafe memory.load(fromByteOffset: 0x40, as: UInt8.self) == 1)

            for mapping in mappings { try ioas.unmap(mapping) }
            _ = try claimed.device.attach(to: ioas)
            try hwpt.destroy()
            try queue.destroy()
            try kernel.munmap(memory, length: 4096)
        }
    }

    @Test("without page requests (QEMU 7.2's functions) a HWPT with a fault queue allocates but does not attach: ENODEV (intel/iommu.c:3492-3499; scenario U27)")
    func noPageRequests() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        let kernel = MockKernel(configuration: configuration)
        try withClaimed(kernel, try PCIAddress(parsing: "0000:00:02.0")) { ioas, claimed, _ in
            let queue = try ioas.iommufd.allocateFaultQueue()
            let hwpt = try ioas.allocateHWPT(for: try #require(claimed.device.deviceID), faultQueue: queue)
            #expect(errnoOf { _ = try claimed.device.attach(to: hwpt) } == .operationNotSupportedByDevice)
        }
    }
}
