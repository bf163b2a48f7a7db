import DMAMemory
import IOMMUFD
import MockKernel
import Testing
import VFIO

/// The getting-started article (Sources/DMAMemory/DMAMemory.docc/GettingStarted.md), step by
/// step, on MockKernel's edu device: if the API changes, this fails and the article is fixed.
@Suite("the getting-started article runs")
struct GettingStartedTests {
    @Test("claim a device, map a pool of DMA buffers, and the device reads what the CPU wrote")
    func article() throws {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        let kernel = MockKernel(configuration: configuration)
        do {
            let system: any SystemInterface = kernel
            let address = try PCIAddress(parsing: "0000:00:02.0")
            let owned = try VFIOPCIDevice(address, system: system)
            try owned.device.setBusMaster(true)

            let manager = try DMAMemoryManager(addressSpace: owned.addressSpace)
            let pool = try DMABufferPool(manager: manager, bufferSize: 2048, count: 512,
                                         backing: .preferring([.hugetlbMemfd(.huge2MiB), .memfd],
                                                              onFallback: { print("DMA memory: \($0)") }))

            let buffer = try #require(pool.get())
            buffer.bytes.copyBytes(from: Array("hello, device".utf8))
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: buffer.iova.rawValue, length: 13) == Array("hello, device".utf8))
            pool.put(buffer)
            try owned.device.setBusMaster(false)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }
}
