@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group G: busy objects and teardown order.
@Suite("G. busy objects and teardown order")
struct TeardownTests {
    @Test("G1: destroying an IOAS with a device attached gives EBUSY")
    func destroyAttachedIOAS() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            #expect(errnoOf { try world.ioas.destroy() } == .resourceBusy)
            try world.iommufd.destroy(device.selftestID)
        }
    }

    @Test("G2: destroying an attached HWPT gives EBUSY")
    func destroyAttachedHWPT() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            #expect(errnoOf { try world.iommufd.destroy(device.hwptID) } == .resourceBusy)
            #expect(errnoOf { try world.iommufd.destroy(device.deviceID) } == .resourceBusy)
            try world.iommufd.destroy(device.selftestID)
            #expect(errnoOf { try world.iommufd.destroy(device.hwptID) } == .noSuchFileOrDirectory)
        }
    }

    @Test("two mock devices on one IOAS share its automatic HWPT, which lives until the last detaches")
    func sharedAutomaticHWPT() throws {
        try withMockWorld { world in
            let first = try world.ioas.selftestAttachMockDomain()
            let second = try world.ioas.selftestAttachMockDomain()
            #expect(first.hwptID == second.hwptID)
            try world.iommufd.destroy(first.selftestID)
            let observed18 = try world.ioas.iovaRanges().alignment
            #expect(observed18 == 2048)
            try world.iommufd.destroy(second.selftestID)
            let observed19 = try world.ioas.iovaRanges().alignment
            #expect(observed19 == 1)
        }
    }

    enum Step: CaseIterable, Sendable { case destroyIOAS, destroyDevice, closeIOMMUFD }

    static let orders: [[Step]] = [
        [.destroyIOAS, .destroyDevice, .closeIOMMUFD], [.destroyIOAS, .closeIOMMUFD, .destroyDevice],
        [.destroyDevice, .destroyIOAS, .closeIOMMUFD], [.destroyDevice, .closeIOMMUFD, .destroyIOAS],
        [.closeIOMMUFD, .destroyIOAS, .destroyDevice], [.closeIOMMUFD, .destroyDevice, .destroyIOAS],
    ]

    @Test("G3: every destroy order over {IOAS, device+HWPT, iommufd fd} ends with nothing leaked", arguments: orders)
    func everyTeardownOrder(_ order: [Step]) throws {
        let kernel = MockKernel()
        let fd = try kernel.open("/dev/iommu", flags: 0o2000000 | 2, mode: 0)
        let iommufd = IOMMUFD(adopting: FileDescriptor(rawValue: fd), system: kernel, closeOnDeinit: false)
        let ioas = try iommufd.allocateIOAS()
        let device = try ioas.selftestAttachMockDomain()
        let buffer = try kernel.mmap(address: nil, length: Int(4 * page), protection: 3, flags: 0x22, fd: -1, offset: 0)
        _ = try ioas.map(userAddress: UInt64(UInt(bitPattern: buffer)), length: 4 * page)
        #expect(kernel.leaks.pinnedPages == 4)
        var closed = false
        var deviceGone = false
        for step in order {
            switch step {
            case .destroyIOAS:
                // The device's HWPT holds the IOAS until the device goes (iommufd_object_remove: EBUSY).
                let result = errnoOf { try ioas.destroy() }
                #expect(result == (closed ? .badFileDescriptor : (deviceGone ? nil : .resourceBusy)))
            case .destroyDevice:
                let result = errnoOf { try iommufd.destroy(device.selftestID) }
                #expect(result == (closed ? .badFileDescriptor : nil))
                deviceGone = true
            case .closeIOMMUFD:
                try kernel.close(fd)
                closed = true
            }
        }
        #expect(kernel.leaks.liveObjects == 0)
        #expect(kernel.leaks.pinnedPages == 0)
        #expect(kernel.leaks.openFileDescriptors == 0)
        try kernel.munmap(buffer, length: Int(4 * page))
        #expect(kernel.leaks.isEmpty)
    }

    @Test("G4: closing the iommufd with live objects and pins frees everything")
    func closeFreesEverything() throws {
        let kernel = MockKernel()
        do {
            let iommufd = try IOMMUFD(system: kernel)
            let ioas = try iommufd.allocateIOAS()
            let other = try iommufd.allocateIOAS()
            _ = try ioas.selftestAttachMockDomain()
            _ = try other.selftestAttachMockDomain()
            let buffer = try kernel.mmap(address: nil, length: Int(8 * page), protection: 3, flags: 0x22, fd: -1, offset: 0)
            let mapping = try ioas.map(userAddress: UInt64(UInt(bitPattern: buffer)), length: 8 * page)
            _ = try other.copy(from: ioas, iova: mapping.iova, length: 8 * page)
            #expect(kernel.leaks.liveObjects == 8)
            #expect(kernel.leaks.pinnedPages == 8)
            try kernel.munmap(buffer, length: Int(8 * page))
        }
        // The Swift objects' deinitializers ran: IOAS destroys were refused while devices
        // were attached (logged), and the close freed everything.
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("the toolkit's own teardown order is destroy IOAS, then close")
    func toolkitTeardownOrder() throws {
        let kernel = MockKernel()
        do {
            let iommufd = try IOMMUFD(system: kernel)
            _ = try iommufd.allocateIOAS()
        }
        #expect(kernel.trace.map(\.name) == ["open", "IOMMU_IOAS_ALLOC", "IOMMU_DESTROY", "close"])
        #expect(kernel.leaks.isEmpty)
    }
}
