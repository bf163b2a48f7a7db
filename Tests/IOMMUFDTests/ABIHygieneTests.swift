import CIOMMUFD
import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// REFERENCE.md §2 group A: the rules every iommufd command shares.
@Suite("A. ioctl ABI hygiene")
struct ABIHygieneTests {
    struct Shape: Sendable, CustomTestStringConvertible {
        let name: String
        let request: UInt
        let minimumSize: UInt32
        var testDescription: String { "\(name) size=\(minimumSize - 1)" }
    }

    static let shapes: [Shape] = [
        Shape(name: "IOMMU_DESTROY", request: IOMMU_DESTROY, minimumSize: 8),
        Shape(name: "IOMMU_IOAS_ALLOC", request: IOMMU_IOAS_ALLOC, minimumSize: 12),
        Shape(name: "IOMMU_IOAS_ALLOW_IOVAS", request: IOMMU_IOAS_ALLOW_IOVAS, minimumSize: 24),
        Shape(name: "IOMMU_IOAS_COPY", request: IOMMU_IOAS_COPY, minimumSize: 40),
        Shape(name: "IOMMU_IOAS_IOVA_RANGES", request: IOMMU_IOAS_IOVA_RANGES, minimumSize: 32),
        Shape(name: "IOMMU_IOAS_MAP", request: IOMMU_IOAS_MAP, minimumSize: 40),
        Shape(name: "IOMMU_IOAS_UNMAP", request: IOMMU_IOAS_UNMAP, minimumSize: 24),
        Shape(name: "IOMMU_OPTION", request: IOMMU_OPTION, minimumSize: 24),
        Shape(name: "IOMMU_VFIO_IOAS", request: IOMMU_VFIO_IOAS, minimumSize: 12),
        Shape(name: "IOMMU_HWPT_ALLOC", request: IOMMU_HWPT_ALLOC, minimumSize: 24),
        Shape(name: "IOMMU_GET_HW_INFO", request: IOMMU_GET_HW_INFO, minimumSize: 32),
        Shape(name: "IOMMU_HWPT_SET_DIRTY_TRACKING", request: IOMMU_HWPT_SET_DIRTY_TRACKING, minimumSize: 16),
        Shape(name: "IOMMU_HWPT_GET_DIRTY_BITMAP", request: IOMMU_HWPT_GET_DIRTY_BITMAP, minimumSize: 48),
        Shape(name: "IOMMU_HWPT_INVALIDATE", request: IOMMU_HWPT_INVALIDATE, minimumSize: 32),
        Shape(name: "IOMMU_FAULT_QUEUE_ALLOC", request: IOMMU_FAULT_QUEUE_ALLOC, minimumSize: 16),
        Shape(name: "IOMMU_IOAS_MAP_FILE", request: IOMMU_IOAS_MAP_FILE, minimumSize: 40),
        Shape(name: "IOMMU_VIOMMU_ALLOC", request: IOMMU_VIOMMU_ALLOC, minimumSize: 24),
        Shape(name: "IOMMU_VDEVICE_ALLOC", request: IOMMU_VDEVICE_ALLOC, minimumSize: 24),
        Shape(name: "IOMMU_IOAS_CHANGE_PROCESS", request: IOMMU_IOAS_CHANGE_PROCESS, minimumSize: 8),
        Shape(name: "IOMMU_VEVENTQ_ALLOC", request: IOMMU_VEVENTQ_ALLOC, minimumSize: 28),
        Shape(name: "IOMMU_HW_QUEUE_ALLOC", request: IOMMU_HW_QUEUE_ALLOC, minimumSize: 40),
        Shape(name: "IOMMU_IOAS_NOIOMMU_GET_PA", request: IOMMU_IOAS_NOIOMMU_GET_PA, minimumSize: 40),
        Shape(name: "IOMMU_TEST_CMD", request: IOMMU_TEST_CMD, minimumSize: 68),
    ]

    /// A zeroed user buffer larger than any command, with `size` set.
    func buffer(size: UInt32, byteCount: Int = 128) -> UnsafeMutableRawPointer {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        buffer.storeBytes(of: size, as: UInt32.self)
        return buffer
    }

    @Test("A1: size one below the minimum gives EINVAL", arguments: shapes)
    func sizeBelowMinimumIsInvalid(_ shape: Shape) throws {
        try withMockWorld { world in
            let argument = buffer(size: shape.minimumSize - 1)
            defer { argument.deallocate() }
            #expect(world.rawIoctl(shape.request, argument) == .invalidArgument)
        }
    }

    @Test("A2: sizeof+1 with a non-zero tail gives E2BIG")
    func nonZeroTailIsTooBig() throws {
        try withMockWorld { world in
            let argument = buffer(size: 13)
            defer { argument.deallocate() }
            argument.storeBytes(of: 1, toByteOffset: 12, as: UInt8.self)
            #expect(world.rawIoctl(IOMMU_IOAS_ALLOC, argument) == .argListTooLong)
        }
    }

    @Test("A3: sizeof+8 with a zero tail behaves like the exact size")
    func zeroTailIsAccepted() throws {
        try withMockWorld { world in
            let argument = buffer(size: 20)
            defer { argument.deallocate() }
            #expect(world.rawIoctl(IOMMU_IOAS_ALLOC, argument) == nil)
            let id = argument.load(fromByteOffset: 8, as: UInt32.self)
            #expect(id == world.ioas.id.rawValue + 1)
            // The bytes past the kernel's struct are left as they were.
            #expect(argument.loadUnaligned(fromByteOffset: 12, as: UInt64.self) == 0)
            try world.iommufd.destroy(rawID: id)
        }
    }

    @Test("A4: a NULL argument gives EFAULT")
    func nullArgumentIsFault() throws {
        try withMockWorld { world in
            #expect(world.rawIoctl(IOMMU_IOAS_ALLOC, nil) == .badAddress)
        }
    }

    @Test("A5: nr 0x80-1 and a hole after 0x95 give ENOTTY")
    func unknownNumbersAreNotTTY() throws {
        try withMockWorld { world in
            let argument = buffer(size: 16)
            defer { argument.deallocate() }
            #expect(world.rawIoctl(0x3b7f, argument) == .inappropriateIOCTLForDevice)
            #expect(world.rawIoctl(0x3b96, argument) == .inappropriateIOCTLForDevice)
            #expect(world.rawIoctl(0x3bff, argument) == .inappropriateIOCTLForDevice)
        }
    }

    @Test("A5: a request with size bits set does not match the _IO number (ENOTTY)")
    func requestWithSizeBitsIsNotTTY() throws {
        try withMockWorld { world in
            let argument = buffer(size: 40)
            defer { argument.deallocate() }
            #expect(world.rawIoctl(IOMMU_IOAS_MAP | (40 << 16), argument) == .inappropriateIOCTLForDevice)
        }
    }

    @Test("A6: non-zero __reserved in IOAS_MAP gives EOPNOTSUPP")
    func reservedFieldIsNotSupported() throws {
        try withMockWorld { world in
            var command = iommu_ioas_map()
            command.size = 40
            command.flags = IOMMU_IOAS_MAP_READABLE
            command.ioas_id = world.ioas.id.rawValue
            command.__reserved = 1
            command.length = page
            #expect(world.rawIoctl(IOMMU_IOAS_MAP, &command) == .notSupported)
        }
    }

    @Test("A6: an unknown map flag gives EOPNOTSUPP")
    func unknownFlagIsNotSupported() throws {
        try withMockWorld { world in
            var command = iommu_ioas_map()
            command.size = 40
            command.flags = IOMMU_IOAS_MAP_READABLE | (1 << 3)
            command.ioas_id = world.ioas.id.rawValue
            command.length = page
            #expect(world.rawIoctl(IOMMU_IOAS_MAP, &command) == .notSupported)
        }
    }

    @Test("A6: IOAS_ALLOC with flags, and IOVA_RANGES with __reserved, give EOPNOTSUPP")
    func otherReservedFieldsAreNotSupported() throws {
        try withMockWorld { world in
            var alloc = iommu_ioas_alloc(size: 12, flags: 1, out_ioas_id: 0)
            #expect(world.rawIoctl(IOMMU_IOAS_ALLOC, &alloc) == .notSupported)
            var ranges = iommu_ioas_iova_ranges()
            ranges.size = 32
            ranges.ioas_id = world.ioas.id.rawValue
            ranges.__reserved = 7
            #expect(world.rawIoctl(IOMMU_IOAS_IOVA_RANGES, &ranges) == .notSupported)
        }
    }

    @Test("A7: the size-0 probe reports exactly the commands a kernel implements, for kernels of several ages (the VM lane's hardware test checks 7.3 itself)",
          arguments: [0x80...0x81, 0x80...0x8a, 0x80...0x94, 0x80...0x95])
    func probeFindsExactlyTheCommands(_ implemented: ClosedRange<UInt32>) throws {
        try withMockWorld(configure: { $0.supportedCommands = implemented }) { world in
            let found = try world.iommufd.supportedCommands()
            let expected = Set(IOMMUOperation.iommufdCommands.filter { implemented.contains(UInt32($0.ioctl!.request & 0xff)) })
            #expect(found == expected)
            #expect(found.count == implemented.count)
        }
    }

    @Test("A7: the size-0 probe reports commands an older kernel lacks as absent (ENOTTY)")
    func probeOnOlderKernel() throws {
        try withMockWorld(configure: { $0.supportedCommands = 0x80...0x8d }) { world in
            let supported = try world.iommufd.supportedCommands()
            #expect(supported.contains(.hwptInvalidate))
            #expect(!supported.contains(.ioasMapFile))
            #expect(!supported.contains(.ioasNoIOMMUGetPA))
            #expect(supported.count == 14)
            #expect(errnoOf { try world.iommufd.supports(.faultQueueAlloc) ? 1 : 0 } == nil)
        }
    }
}
