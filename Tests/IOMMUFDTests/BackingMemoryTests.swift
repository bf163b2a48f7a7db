import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// REFERENCE.md §2 group F: bad backing memory.
@Suite("F. bad backing memory")
struct BackingMemoryTests {
    @Test("F1: mapping memory whose second half was unmapped gives EFAULT once a domain pins it")
    func secondHalfUnmapped() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 4)
            try world.kernel.munmap(buffer + Int(2 * page), length: Int(2 * page))
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 4 * page) } == .badAddress)
            #expect(world.kernel.pinnedPageCount == 0)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 2)
        }
    }

    @Test("F1: mapping memory whose first page was unmapped gives EFAULT once a domain pins it")
    func firstPageUnmapped() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 4)
            try world.kernel.munmap(buffer, length: Int(page))
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: 4 * page) } == .badAddress)
            try world.iommufd.destroy(device.selftestID)
            try world.kernel.munmap(buffer + Int(page), length: Int(3 * page))
        }
    }

    @Test("F1: without a domain nothing is pinned, so unbacked memory maps (lazily) and faults at attach")
    func unbackedMemoryFaultsAtAttach() throws {
        try withMockWorld { world in
            let buffer = try world.memory(pages: 2)
            try world.kernel.munmap(buffer + Int(page), length: Int(page))
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: 2 * page, at: IOVA(1 << 24))
            #expect(errnoOf { try world.ioas.selftestAttachMockDomain() } == .badAddress)
            #expect(world.kernel.leaks.liveObjects == 1)
            try world.ioas.unmap(mapping)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("F1: a WRITEABLE map of read-only memory gives EFAULT; READABLE alone works")
    func readOnlyMemory() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let buffer = try world.memory(pages: 1, writable: false)
            #expect(errnoOf { try world.ioas.map(userAddress: world.address(buffer), length: page) } == .badAddress)
            let mapping = try world.ioas.map(userAddress: world.address(buffer), length: page, access: .readable)
            try world.ioas.unmap(mapping)
            try world.iommufd.destroy(device.selftestID)
            try world.release(buffer, pages: 1)
        }
    }

    @Test("F2: MAP_FILE beyond the end of the memfd gives EINVAL once pinned")
    func mapFileBeyondEOF() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let memfd = try world.kernel.memfdCreate("dma", flags: CIOMMUFD_MFD_CLOEXEC)
            try world.kernel.ftruncate(memfd, length: Int64(2 * page))
            #expect(errnoOf { try world.ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: page, length: 2 * page) } == .invalidArgument)
            let inside = try world.ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: 2 * page)
            try world.ioas.unmap(inside)
            try world.iommufd.destroy(device.selftestID)
            try world.kernel.close(memfd)
        }
    }

    @Test("F2: MAP_FILE of a memfd truncated to 0 gives EINVAL once pinned")
    func mapFileTruncated() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let memfd = try world.kernel.memfdCreate("dma", flags: CIOMMUFD_MFD_CLOEXEC)
            try world.kernel.ftruncate(memfd, length: Int64(page))
            try world.kernel.ftruncate(memfd, length: 0)
            #expect(errnoOf { try world.ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: page) } == .invalidArgument)
            try world.iommufd.destroy(device.selftestID)
            try world.kernel.close(memfd)
        }
    }

    @Test("F2: MAP_FILE of a closed descriptor gives EBADF")
    func mapFileBadDescriptor() throws {
        try withMockWorld { world in
            #expect(errnoOf { try world.ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: 999), offset: 0, length: page) } == .badFileDescriptor)
        }
    }

    @Test("MAP_FILE keeps the memfd's pages alive after its descriptor is closed")
    func mapFileOutlivesDescriptor() throws {
        try withMockWorld { world in
            let device = try world.ioas.selftestAttachMockDomain()
            let memfd = try world.kernel.memfdCreate("dma", flags: CIOMMUFD_MFD_CLOEXEC)
            try world.kernel.ftruncate(memfd, length: Int64(page))
            let mapping = try world.ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: page)
            try world.kernel.close(memfd)
            #expect(world.kernel.deviceWrite(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue, bytes: [1, 2, 3]))
            #expect(world.kernel.deviceRead(iommufd: world.fd, ioas: world.ioas.id.rawValue, iova: mapping.iova.rawValue, length: 3) == [1, 2, 3])
            try world.ioas.unmap(mapping)
            try world.iommufd.destroy(device.selftestID)
        }
    }
}
