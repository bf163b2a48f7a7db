import Edu
import Foundation
import IOMMUFD
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// Peer-to-peer DMA through a dma-buf: nvme's controller memory buffer (QEMU's
    /// `cmb_size_mb`, BAR 2) exported with `VFIO_DEVICE_FEATURE_DMA_BUF`, mapped into the
    /// IOAS edu DMAs through (`IOMMU_IOAS_MAP_FILE`), written by edu and read back through
    /// nvme's BAR mapping, byte for byte; a reset kills the window for good, a new one works.
    @Suite("Hardware: P2P through a dma-buf (edu into nvme's CMB)",
           .enabled(if: Hardware.eduDevice != nil && Hardware.nvmeDevice != nil, Hardware.qemuDevicesReason), .serialized)
    struct DMABufP2PTests {
        /// nvme's CMB BAR (QEMU: `NVME_CMB_BIR`).
        static let cmbBAR: UInt32 = 2

        @Test("edu writes 4095 bytes into nvme's CMB through its dma-buf at an IOVA, reads them back through the same IOVA, and nvme's BAR shows each byte")
        func eduIntoNVMeCMB() throws {
            let context = try DMAContext(path: .only(.iommufdCdev), system: LinuxSystem())
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }
            let teaching = try context.claim(try #require(Hardware.eduDevice))
            let storage = try context.claim(try #require(Hardware.nvmeDevice))
            let region = try storage.device.region(Self.cmbBAR)
            try #require(region.size >= 4096, "nvme has no CMB in BAR 2 (the VM lane gives it cmb_size_mb)")
            let cmb = try storage.device.exportDMABuf(bar: Int(Self.cmbBAR), length: region.size)
            // edu's DMA engine reaches 28 bits (EduDevice.addressLimit): the window sits below 256 MiB.
            let window = try ioas.map(cmb, at: IOVA(0x0800_0000))
            let bar = try storage.device.map(region)

            let count = Int(EduDevice.maximumTransfer)
            let source = Hardware.pinnableBuffer(byteCount: 4096)
            let back = Hardware.pinnableBuffer(byteCount: 4096)
            for index in 0..<4096 { source[index] = UInt8(truncatingIfNeeded: index &* 29 &+ 3) }
            let sourceMapping = try context.addressSpace.map(UnsafeRawBufferPointer(source), at: IOVA(0x10_0000), access: .readable)
            let backMapping = try context.addressSpace.map(UnsafeRawBufferPointer(back), at: IOVA(0x20_0000))
            try teaching.device.setBusMaster(true)
            let edu = try EduDevice(teaching.device)
            try edu.copyToDevice(from: sourceMapping.iova, count: UInt64(count))
            try edu.copyToHost(to: window.iova, count: UInt64(count))  // into nvme's CMB, peer to peer
            let throughBAR = (0..<count).filter { bar.read8(at: UInt64($0)) != source[$0] }.count
            #expect(throughBAR == 0, "\(throughBAR) of \(count) bytes differ when read through nvme's BAR")

            // And back out of the CMB through the same window into host memory.
            try edu.copyToDevice(from: window.iova, count: UInt64(count))
            try edu.copyToHost(to: backMapping.iova, count: UInt64(count))
            let throughDMA = (0..<count).filter { back[$0] != source[$0] }.count
            #expect(throughDMA == 0, "\(throughDMA) of \(count) bytes differ when edu reads the CMB back")
            try teaching.device.setBusMaster(false)

            // A reset of nvme revokes the dma-buf and, memory decoding staying on, gives it
            // back: the old window is dead for good but keeps its IOVA (EEXIST); a new
            // window carries edu's DMA again.
            try storage.device.reset()
            do throws(IOMMUError) {
                _ = try ioas.map(cmb, at: window.iova)
                Issue.record("the dead window's IOVA was free")
            } catch {
                #expect(error.errno == .fileExists)
            }
            let renewed = try ioas.map(cmb, at: IOVA(0x0900_0000))
            try teaching.device.setBusMaster(true)
            try edu.copyToHost(to: renewed.iova, count: 64)
            try teaching.device.setBusMaster(false)
            #expect((0..<64).allSatisfy { bar.read8(at: UInt64($0)) == back[$0] }, "edu's bytes reach the CMB through the new window")
            try ioas.unmap(renewed)
            try ioas.unmap(window)
            try context.addressSpace.unmap(backMapping)
            try context.addressSpace.unmap(sourceMapping)
        }
    }
}
