import Foundation
@_spi(Selftest) import IOMMUFD
import SystemPackage
import Testing

extension HardwareSuite {
    /// The typed IOAS API against a real kernel's /dev/iommu, without devices.
    @Suite("Hardware: real /dev/iommu", .serialized)
    struct HardwareTests {
        @Test("the kernel implements every iommufd command of 7.3, by the size-0 probe")
        func featureProbe() throws {
            let iommufd = try IOMMUFD()
            let supported = try iommufd.supportedCommands()
            #expect(supported == Set(IOMMUOperation.iommufdCommands), "missing: \(Set(IOMMUOperation.iommufdCommands).subtracting(supported).map(\.name).sorted())")
        }

        @Test("IOAS lifecycle: alloc, ranges, map, unmap, destroy, and destroy again is ENOENT")
        func ioasLifecycle() throws {
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let ranges = try ioas.iovaRanges()
            #expect(ranges.ranges == [IOVARange(start: IOVA(0), last: IOVA(.max))])
            let buffer = Hardware.pinnableBuffer(byteCount: 16384)
            let mapping = try ioas.map(UnsafeRawBufferPointer(buffer))
            #expect(mapping.length == 16384)
            try ioas.unmap(mapping)
            let id = ioas.id
            try ioas.destroy()
            do {
                try iommufd.destroy(id)
                Issue.record("destroying a destroyed IOAS succeeded")
            } catch {
                #expect(error.errno == .noSuchFileOrDirectory && error.operation == .destroy)
            }
        }

        @Test("unmap semantics: a split is ENOENT, a covering range returns the bytes")
        func unmapSemantics() throws {
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let buffer = Hardware.pinnableBuffer(byteCount: 65536)
            _ = try ioas.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x100_0000))
            do {
                _ = try ioas.unmap(iova: IOVA(0x100_4000), length: 16384)
                Issue.record("a split unmap succeeded")
            } catch {
                #expect(error.errno == .noSuchFileOrDirectory)
            }
            #expect(try ioas.unmapAll() == 65536)
        }

        @Test("MAP_FILE from a memfd, at a fixed IOVA and at a chosen one")
        func mapFile() throws {
            let system = LinuxSystem()
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let memfd = try system.memfdCreate("hw-map-file", flags: 0)
            defer { try? system.close(memfd) }
            try system.ftruncate(memfd, length: 1 << 20)
            let fixed = try ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 0, length: 1 << 20, at: IOVA(0x400_0000))
            #expect(fixed.iova == IOVA(0x400_0000))
            let chosen = try ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: memfd), offset: 64 << 10, length: 64 << 10)
            #expect(chosen.iova.rawValue % (64 << 10) == 0)
            #expect(try ioas.unmapAll() == (1 << 20) + (64 << 10))
        }

        @Test("allowed IOVAs steer automatic allocation; IOVA_RANGES reports reserved holes only")
        func allowIOVAs() throws {
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            try ioas.allowIOVAs([IOVARange(start: IOVA(0x1000_0000), last: IOVA(0x1fff_ffff))])
            let buffer = Hardware.pinnableBuffer(byteCount: 8192)
            let mapping = try ioas.map(UnsafeRawBufferPointer(buffer))
            #expect(mapping.iova == IOVA(0x1000_0000))
            #expect(try ioas.iovaRanges().ranges == [IOVARange(start: IOVA(0), last: IOVA(.max))])
        }

        @Test("the huge-pages option reads 1 by default, and 0 after it is cleared")
        func hugePagesOption() throws {
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            #expect(try ioas.hugePagesEnabled())
            try ioas.setHugePages(false)
            #expect(try !ioas.hugePagesEnabled())
        }
    }
}
