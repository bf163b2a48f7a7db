import Foundation
@_spi(Selftest) import IOMMUFD
import SystemPackage
import Testing

extension HardwareSuite {
    /// The same rules with a device attached: the kernel selftest's mock domain
    /// (IOMMU_TEST_CMD / IOMMU_TEST_OP_MOCK_DOMAIN), inside the real kernel.
    @Suite("Hardware: kernel selftest mock domain", 
           .enabled(if: Hardware.hasSelftest, Hardware.selftestReason), .serialized)
    struct MockDomainTests {
        @Test("attaching narrows IOVA_RANGES to the mock aperture and sets the alignment")
        func rangesAfterAttach() throws {
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let device = try ioas.selftestAttachMockDomain()
            let ranges = try ioas.iovaRanges()
            #expect(ranges.ranges == [IOVARange(start: IOVA(1 << 24), last: IOVA((1 << 31) - 1))])
            #expect(ranges.alignment == 2048)
            try iommufd.destroy(device.selftestID)
            #expect(try ioas.iovaRanges().ranges == [IOVARange(start: IOVA(0), last: IOVA(.max))])
        }

        @Test("with a device attached, the IOAS is busy and a misaligned length is EINVAL")
        func busyAndAligned() throws {
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            let device = try ioas.selftestAttachMockDomain()
            let buffer = Hardware.pinnableBuffer(byteCount: 65536)
            do {
                _ = try ioas.map(userAddress: UInt64(UInt(bitPattern: buffer.baseAddress)), length: 1000)
                Issue.record("a 1000-byte map with a 2 KiB domain succeeded")
            } catch {
                #expect(error.errno == .invalidArgument)
            }
            let mapping = try ioas.map(UnsafeRawBufferPointer(buffer))
            #expect(mapping.iova == IOVA(1 << 24))
            do {
                try ioas.destroy()
                Issue.record("destroying an IOAS with a device attached succeeded")
            } catch {
                #expect(error.errno == .resourceBusy)
            }
            try iommufd.destroy(device.selftestID)
            try ioas.unmap(mapping)
            try ioas.destroy()
        }

        @Test("the leak oracle sees the pins of a mapped buffer, and none once the iommufd is closed")
        func leakOracleSeesPins() throws {
            let buffer = Hardware.pinnableBuffer(byteCount: 64 << 10)
            let address = try #require(buffer.baseAddress)
            let before = KernelResourceSnapshot.take()
            do {
                let iommufd = try IOMMUFD()
                let ioas = try iommufd.allocateIOAS()
                _ = try ioas.selftestAttachMockDomain()
                _ = try ioas.map(UnsafeRawBufferPointer(buffer))
                let during = KernelResourceSnapshot.take()
                #expect(during.pinnedKiB == before.pinnedKiB + 64, "VmPin counts the 16 pinned pages")
                #expect(during.kernelObjectDescriptors == (before.kernelObjectDescriptors + ["/dev/iommu"]).sorted())
                #expect(during != before)
                try iommufd.selftestCheckRefs(address: address, length: 64 << 10, refs: 1)
                do {
                    try iommufd.selftestCheckRefs(address: address, length: 64 << 10, refs: 0)
                    Issue.record("MD_CHECK_REFS with refs 0 passed on pinned pages")
                } catch {
                    #expect(error.errno == .ioError)
                }
                withExtendedLifetime(ioas) {}
            }
            #expect(KernelResourceSnapshot.take() == before)
            try IOMMUFD().selftestCheckRefs(address: address, length: 64 << 10, refs: 0)
        }

        @Test("memlock: a map beyond RLIMIT_MEMLOCK is ENOMEM, and the error names the limit",
              .enabled(if: Hardware.unprivileged, Hardware.unprivilegedReason))
        func memlock() throws {
            let system = LinuxSystem()
            let original = try system.memoryLockLimit()
            try system.setMemoryLockLimit(ResourceLimit(current: 64 << 10, maximum: original.maximum))
            defer { try? system.setMemoryLockLimit(original) }
            let iommufd = try IOMMUFD()
            let ioas = try iommufd.allocateIOAS()
            _ = try ioas.selftestAttachMockDomain()
            let buffer = Hardware.pinnableBuffer(byteCount: 256 << 10)
            buffer.initializeMemory(as: UInt8.self, repeating: 1)
            do {
                _ = try ioas.map(UnsafeRawBufferPointer(buffer))
                Issue.record("a 256 KiB map under a 64 KiB memlock limit succeeded")
            } catch {
                #expect(error.errno == .noMemory)
                #expect(error.context.memlockLimit == 64 << 10)
                #expect(error.description.contains("memlock"))
            }
            let small = try ioas.map(UnsafeRawBufferPointer(rebasing: buffer[0..<(32 << 10)]))
            try ioas.unmap(small)
        }
    }
}
