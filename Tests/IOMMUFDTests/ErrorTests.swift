import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// IOMMUError keeps the operation, the errno, the context, and explains the well-known cases.
@Suite("IOMMUError")
struct ErrorTests {
    @Test("the description names the operation, the errno and the context")
    func descriptionFormat() {
        var context = IOMMUErrorContext(objectID: 1, iova: 0x100000, length: 0x1000)
        context.memlockLimit = nil
        let error = IOMMUError(.ioasMap, .fileExists, context)
        #expect(error.description.hasPrefix("IOMMU_IOAS_MAP failed: File exists (errno 17) [id=1 iova=0x100000 length=0x1000]"))
        #expect(error.description.contains("overlaps an existing mapping"))
    }

    @Test("opening a missing /dev/iommu explains CONFIG_IOMMUFD")
    func missingDeviceNode() {
        var configuration = MockKernel.Configuration()
        configuration.iommuDevice = .absent
        do {
            _ = try IOMMUFD(system: MockKernel(configuration: configuration))
            Issue.record("open must fail")
        } catch {
            #expect(error.operation == .open && error.errno == .noSuchFileOrDirectory)
            #expect(error.context.path == "/dev/iommu")
            #expect(error.description.contains("CONFIG_IOMMUFD"))
        }
    }

    @Test("EACCES opening /dev/iommu explains permissions and the udev rule")
    func permissionDenied() {
        var configuration = MockKernel.Configuration()
        configuration.iommuDevice = .permissionDenied
        do {
            _ = try IOMMUFD(system: MockKernel(configuration: configuration))
            Issue.record("open must fail")
        } catch {
            #expect(error.errno == .permissionDenied)
            #expect(error.explanation?.fix?.contains("udev") == true)
        }
    }

    @Test("ENOTTY explains that this kernel lacks the command")
    func missingCommand() throws {
        var configuration = MockKernel.Configuration()
        configuration.supportedCommands = 0x80...0x8e
        let iommufd = try IOMMUFD(system: MockKernel(configuration: configuration))
        let ioas = try iommufd.allocateIOAS()
        do {
            _ = try ioas.mapFile(fileDescriptor: FileDescriptor(rawValue: 3), offset: 0, length: 4096)
            Issue.record("MAP_FILE must be missing")
        } catch {
            #expect(error.errno == .inappropriateIOCTLForDevice)
            #expect(error.description.contains("does not implement IOMMU_IOAS_MAP_FILE"))
        }
    }

    @Test("errors remember where they were thrown")
    func sourceLocation() throws {
        let iommufd = try IOMMUFD(system: MockKernel())
        do {
            try iommufd.destroy(rawID: 77)
            Issue.record("must fail")
        } catch {
            #expect("\(error.fileID)".hasSuffix("ErrorTests.swift"))
            #expect(error.line > 0)
            #expect(error.explanation?.meaning.contains("no object with that id") == true)
        }
    }

    @Test("every operation has the kernel's spelling")
    func operationNames() {
        #expect(IOMMUOperation.ioasMap.name == "IOMMU_IOAS_MAP")
        #expect(IOMMUOperation.iommufdCommands.count == 22)
        #expect(IOMMUOperation.iommufdCommands.enumerated().allSatisfy { $0.element.ioctl?.request == 0x3b80 + UInt($0.offset) })
        #expect(IOMMUOperation.ioasNoIOMMUGetPA.name == "IOMMU_IOAS_NOIOMMU_GET_PA")
    }

    @Test("IOVA ranges are inclusive and know their length")
    func iovaRanges() {
        let range = IOVARange(start: IOVA(0x1000), length: 0x1000)
        #expect(range.last == IOVA(0x1fff))
        #expect(range.length == 0x1000)
        #expect(IOVARange(start: IOVA(0), last: IOVA(.max)).length == nil)
        #expect(range.contains(IOVA(0x1fff)) && !range.contains(IOVA(0x2000)))
        #expect(IOVA(0x10).advanced(by: 0x10).description == "0x20")
    }
}
