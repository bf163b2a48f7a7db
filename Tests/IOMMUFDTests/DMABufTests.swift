import CIOMMUFD
import IOMMUFD
import IOMMUFDSystem
import MockKernel
import SystemPackage
import Testing
import VFIO

/// P2P through dma-bufs on MockKernel: nvme's controller memory buffer exported with
/// `VFIO_DEVICE_FEATURE_DMA_BUF` and mapped into edu's IOAS; a device write through the
/// window lands in nvme's BAR; a reset revokes it for good. The M scenarios hold each errno,
/// and the VM lane runs the same walk with edu's DMA engine (DMABufP2PTests).
@Suite("dma-buf P2P on MockKernel")
struct DMABufTests {
    static func machine() -> MockKernel {
        var configuration = MockKernel.Configuration()
        configuration.addPCIDevice(.edu())
        configuration.addPCIDevice(.nvme())
        return MockKernel(configuration: configuration)
    }

    /// edu and nvme claimed into one iommufd context on a fresh machine; checks for leaks after.
    static func withEduAndNVMe(_ body: (MockKernel, IOAS, VFIODevice) throws -> Void) throws {
        let kernel = Self.machine()
        do {
            let context = try DMAContext(path: .only(.iommufdCdev), system: kernel)
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
            _ = try context.claim(try PCIAddress(parsing: "0000:00:02.0"))
            let storage = try context.claim(try PCIAddress(parsing: "0000:00:04.0"))
            try body(kernel, ioas, storage.device)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    @Test("a write through the IOVA window reaches nvme's BAR 2; a reset kills the window for good (pages.c:1439-1456), memory decoding off makes a new map ENODEV")
    func windowIntoCMB() throws {
        try Self.withEduAndNVMe { kernel, ioas, device in
            let region = try device.region(2)
            #expect(region.size == 0x10_0000)
            let cmb = try device.exportDMABuf(bar: 2, length: region.size)
            let window = try ioas.map(cmb, at: IOVA(0x4000_0000))
            let bar = try device.map(region)
            let fd = ioas.iommufd.fileDescriptor.rawValue
            #expect(kernel.deviceWrite(iommufd: fd, ioas: ioas.id.rawValue, iova: window.iova.rawValue + 0x100, bytes: [0xde, 0xad, 0xbe, 0xef]))
            #expect(bar.read32(at: 0x100) == 0xefbe_adde)
            #expect(kernel.deviceRead(iommufd: fd, ioas: ioas.id.rawValue, iova: window.iova.rawValue + 0x100, length: 4) == [0xde, 0xad, 0xbe, 0xef])

            try device.reset()
            #expect(!kernel.deviceWrite(iommufd: fd, ioas: ioas.id.rawValue, iova: window.iova.rawValue, bytes: [1]), "the window is dead")
            let renewed = try ioas.map(cmb, at: IOVA(0x5000_0000))
            #expect(kernel.deviceWrite(iommufd: fd, ioas: ioas.id.rawValue, iova: renewed.iova.rawValue, bytes: [7]))
            #expect(bar.read8(at: 0) == 7)
            try device.writeConfiguration(UInt16(0), at: 4)  // memory decoding off: revoked
            do throws(IOMMUError) {
                _ = try ioas.map(cmb, at: IOVA(0x6000_0000))
                Issue.record("mapping a revoked dma-buf succeeded")
            } catch {
                #expect(error.errno == .operationNotSupportedByDevice)
            }
            try ioas.unmap(renewed)
            try ioas.unmap(window)
        }
    }

    @Test("a dma-buf mapping is device memory: nothing is pinned or charged, and the descriptor can close before the unmap")
    func notPinned() throws {
        try Self.withEduAndNVMe { kernel, ioas, device in
            let before = String(decoding: try kernel.readFile("/proc/self/status"), as: UTF8.self)
            let cmb = try device.exportDMABuf(bar: 2, length: 0x10_0000)
            let window = try ioas.map(cmb, at: IOVA(0x4000_0000))
            try cmb.close()
            let after = String(decoding: try kernel.readFile("/proc/self/status"), as: UTF8.self)
            func pinned(_ status: String) -> Substring? { status.split(separator: "\n").first { $0.hasPrefix("VmPin:") } }
            #expect(pinned(before) == pinned(after))
            try ioas.unmap(window)
        }
    }
}
