import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

let page: UInt64 = 4096

/// One test's world: a fresh MockKernel, an open iommufd and an IOAS, with the
/// leak oracle checked when the test body returns (the selftests' teardown check).
struct MockWorld {
    let kernel: MockKernel
    let iommufd: IOMMUFD
    let ioas: IOAS

    var fd: Int32 { iommufd.fileDescriptor.rawValue }

    /// Anonymous read-write memory from the mock (real memory a mock device can reach).
    func memory(pages: UInt64, writable: Bool = true) throws -> UnsafeMutableRawPointer {
        try kernel.mmap(address: nil, length: Int(pages * page), protection: PROT_READ | (writable ? PROT_WRITE : 0),
                        flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
    }

    func release(_ pointer: UnsafeMutableRawPointer, pages: UInt64) throws {
        try kernel.munmap(pointer, length: Int(pages * page))
    }

    func address(_ pointer: UnsafeMutableRawPointer) -> UInt64 { UInt64(UInt(bitPattern: pointer)) }

    /// Issues a raw iommufd ioctl on this world's fd and returns the errno (nil on success).
    func rawIoctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Errno? {
        do {
            _ = try kernel.ioctl(fd, request, argument)
            return nil
        } catch {
            return error
        }
    }
}

/// Runs `body` in a fresh world and then checks that everything was released, and that
/// the model refused as unmodelled exactly the commands in `unmodelled` (none by default:
/// a test that leans on an unmodelled command learns nothing about the kernel).
func withMockWorld(
    configure: (inout MockKernel.Configuration) -> Void = { _ in },
    unmodelled: [IOMMUOperation] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (MockWorld) throws -> Void
) throws {
    var configuration = MockKernel.Configuration()
    configure(&configuration)
    let kernel = MockKernel(configuration: configuration)
    do {
        let iommufd = try IOMMUFD(system: kernel)
        let ioas = try iommufd.allocateIOAS()
        try body(MockWorld(kernel: kernel, iommufd: iommufd, ioas: ioas))
    }
    #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)", sourceLocation: sourceLocation)
    #expect(kernel.descriptorsWithoutCloseOnExec == 0, sourceLocation: sourceLocation)
    #expect(kernel.unmodelledCalls == unmodelled, "refused as unmodelled: \(kernel.unmodelledCalls)", sourceLocation: sourceLocation)
}

/// The errno of a throwing iommufd call, or nil when it succeeded.
func errnoOf<T: ~Copyable>(_ body: () throws -> T) -> Errno? {
    do {
        _ = try body()
        return nil
    } catch let error as IOMMUError {
        return error.errno
    } catch let error as Errno {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

/// The mock side of a VM-lane probe: on a fresh MockKernel the probe gives what Linux 7.3
/// answered in the VM, line by line, leaks nothing and leans on nothing unmodelled.
func expectMockAnswersAsLinux(_ probe: (any SystemInterface) throws -> [String], linuxAnswer: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
    let kernel = MockKernel()
    let lines = try probe(kernel)
    #expect(lines == linuxAnswer, "\(lines)", sourceLocation: sourceLocation)
    #expect(kernel.leaks.isEmpty, "\(kernel.leaks)", sourceLocation: sourceLocation)
    #expect(kernel.unmodelledCalls.isEmpty, "\(kernel.unmodelledCalls)", sourceLocation: sourceLocation)
}

/// The function at `address` claimed into a fresh iommufd `DMAContext` on `kernel`: `body`
/// gets the context's IOAS, the claimed device and the context; afterwards everything is
/// dropped and the model checked for leaks.
func withClaimed(_ kernel: MockKernel, _ address: PCIAddress, sourceLocation: SourceLocation = #_sourceLocation,
                 _ body: (IOAS, VFIOPCIDevice, DMAContext) throws -> Void) throws {
    do {
        let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
        guard case .iommufd(let ioas) = context.addressSpace else {
            Issue.record("not an iommufd context", sourceLocation: sourceLocation)
            return
        }
        try body(ioas, try context.claim(address), context)
    }
    #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)", sourceLocation: sourceLocation)
}
