import CIOMMUFD
@testable import IOMMUFD
import MockKernel
import SystemPackage
import Testing

/// The one command descriptor table and the catalogue that uses it.
@Suite("ioctl catalogue: the descriptor table and one function per ioctl")
struct IOCTLCatalogueTests {
    @Test("every ioctl of the table is _IO(';', nr) in its family's range, our struct is the kernel's size, and the minimum fits",
          arguments: IOMMUOperation.allCases.filter { $0.ioctl != nil })
    func descriptorTable(_ operation: IOMMUOperation) throws {
        let descriptor = try #require(operation.ioctl)
        #expect(descriptor.request & ~0xff == 0x3b00, "no size or direction bits")
        let nr = descriptor.request & 0xff
        switch descriptor.family {
        case .iommufd: #expect((0x80...0x95).contains(nr))
        case .selftest: #expect(nr == 0xa0)
        case .vfioContainer, .vfioGroup, .vfioDevice: #expect((100...121).contains(nr))
        }
        #expect(descriptor.structSize == descriptor.kernelSize, "our struct for \(operation.name) must have the kernel's size")
        #expect(descriptor.minimumSize <= descriptor.kernelSize)
        #expect(IOMMUOperation(request: descriptor.request, family: descriptor.family) == operation, "one operation per request and family")
    }

    @Test("VFIO numbers 12-14 mean different commands on a device and on a container")
    func sharedNumbers() {
        #expect(IOMMUOperation(request: VFIO_IOMMU_MAP_DMA, family: .vfioContainer) == .vfioIOMMUMapDMA)
        #expect(IOMMUOperation(request: VFIO_IOMMU_MAP_DMA, family: .vfioDevice) == .vfioDevicePCIHotReset)
        #expect(IOMMUOperation(request: VFIO_IOMMU_MAP_DMA, family: .iommufd) == nil)
    }

    /// Each catalogue function issues the request of the operation it names: MockKernel traces
    /// the request under the table's name for it, and the error names the same operation.
    @Test("each iommufd and selftest catalogue function issues its own request")
    func requestsMatchOperations() throws {
        var configuration = MockKernel.Configuration()
        configuration.selftestEnabled = true
        let kernel = MockKernel(configuration: configuration)
        let fd = try kernel.open("/dev/iommu", flags: O_RDWR, mode: 0)
        defer { try? kernel.close(fd) }
        func issued(_ expected: IOMMUOperation, _ call: () throws(IOMMUError) -> Void) {
            kernel.clearTrace()
            do {
                try call()
            } catch {
                #expect(error.operation == expected)
            }
            #expect(kernel.trace.last?.name == expected.name)
        }
        var ranges = [iommu_iova_range](repeating: iommu_iova_range(), count: 2)
        let ioas = try IOMMUFDIOCTL.ioasAlloc(IOCTLSeam(kernel), fd, fileID: #fileID, line: #line)
        #expect(kernel.trace.last?.name == IOMMUOperation.ioasAlloc.name)
        issued(.ioasMap) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.ioasMap(IOCTLSeam(kernel), fd, ioas: ioas, flags: 0, userAddress: 0, length: 0, iova: 0, fileID: #fileID, line: #line) }
        issued(.ioasMapFile) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.ioasMapFile(IOCTLSeam(kernel), fd, ioas: ioas, flags: 0, fileDescriptor: -1, start: 0, length: 0, iova: 0, fileID: #fileID, line: #line) }
        issued(.ioasCopy) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.ioasCopy(IOCTLSeam(kernel), fd, destination: ioas, source: ioas, flags: 0, length: 0, destinationIOVA: 0, sourceIOVA: 0, fileID: #fileID, line: #line) }
        issued(.ioasUnmap) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.ioasUnmap(IOCTLSeam(kernel), fd, ioas: ioas, iova: 0, length: 0, fileID: #fileID, line: #line) }
        issued(.ioasIOVARanges) { () throws(IOMMUError) in
            _ = try ranges.withUnsafeMutableBufferPointer { (entries) throws(IOMMUError) in
                try IOMMUFDIOCTL.ioasIOVARanges(IOCTLSeam(kernel), fd, ioas: ioas, into: entries, fileID: #fileID, line: #line)
            }
        }
        issued(.ioasAllowIOVAs) { () throws(IOMMUError) in
            try IOMMUFDIOCTL.ioasAllowIOVAs(IOCTLSeam(kernel), fd, ioas: ioas, ranges: UnsafeBufferPointer(start: nil, count: 0), fileID: #fileID, line: #line)
        }
        issued(.option) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.option(IOCTLSeam(kernel), fd, option: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object: ioas, value: 0, fileID: #fileID, line: #line) }
        issued(.getHWInfo) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.getHardwareInfo(IOCTLSeam(kernel), fd, device: 99, flags: 0, dataType: 0, into: UnsafeMutableRawBufferPointer(start: nil, count: 0), fileID: #fileID, line: #line) }
        issued(.testCommand) { () throws(IOMMUError) in try SelftestIOCTL.addReserved(IOCTLSeam(kernel), fd, ioas: ioas, start: 0x7000_0000, length: 4096, fileID: #fileID, line: #line) }
        issued(.testCommand) { () throws(IOMMUError) in _ = try SelftestIOCTL.mockDomain(IOCTLSeam(kernel), fd, pageTable: ioas, fileID: #fileID, line: #line) }
        issued(.vfioIOAS) { () throws(IOMMUError) in _ = try IOMMUFDIOCTL.vfioIOAS(IOCTLSeam(kernel), fd, op: IOMMU_VFIO_IOAS_GET, ioas: 0, fileID: #fileID, line: #line) }
        issued(.destroy) { () throws(IOMMUError) in try IOMMUFDIOCTL.destroy(IOCTLSeam(kernel), fd, id: 999, fileID: #fileID, line: #line) }
    }

    @Test("the size negotiation asks again with the size the kernel wants, and gives up when it keeps growing")
    func sizeNegotiation() throws {
        var sizes: [Int] = []
        let answer = try withSizeNegotiation(initialByteCount: 16, operation: .ioasIOVARanges, fileID: #fileID, line: #line) {
            (buffer) throws(IOMMUError) -> SizedAnswer<Int> in
            sizes.append(buffer.count)
            #expect(buffer.allSatisfy { $0 == 0 }, "every try starts from zeroed memory")
            return buffer.count < 64 ? .needs(byteCount: 64) : .complete(buffer.count)
        }
        #expect(answer == 64 && sizes == [16, 64])
        do {
            _ = try withSizeNegotiation(initialByteCount: 8, operation: .ioasIOVARanges, fileID: #fileID, line: #line) {
                (buffer) throws(IOMMUError) -> SizedAnswer<Int> in .needs(byteCount: buffer.count * 2)
            }
            Issue.record("an answer that always grows must not loop forever")
        } catch {
            #expect(error.errno == .resourceTemporarilyUnavailable && error.operation == .ioasIOVARanges)
        }
    }
}
