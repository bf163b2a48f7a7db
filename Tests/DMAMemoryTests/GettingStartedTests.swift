import DMAMemory
import Edu
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
        kernel.installEduModel("0000:00:02.0")
        do {
            let system: any SystemInterface = kernel
            let address = try PCIAddress(parsing: "0000:00:02.0")
            let owned = try VFIOPCIDevice(address, system: system)
            try owned.device.setBusMaster(true)

            let manager = try DMAMemoryManager(addressSpace: owned.addressSpace)
            let pool = try DMABufferPool(manager: manager, bufferSize: 2048, count: 512,
                                         backing: .preferring([.hugetlbMemfd(.huge2MiB), .memfd],
                                                              onFallback: { print("DMA memory: \($0)") }))

            let edu = try EduDevice(owned.device)
            let outbound = try #require(pool.get()), inbound = try #require(pool.get())
            outbound.bytes.copyBytes(from: Array("hello, device".utf8))
            try edu.copyToDevice(from: outbound.iova, count: 13)
            try edu.copyToHost(to: inbound.iova, count: 13)
            #expect(String(decoding: inbound.bytes.prefix(13), as: UTF8.self) == "hello, device")
            pool.put(outbound)
            pool.put(inbound)
            try owned.device.setBusMaster(false)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }
}
