import Edu
import Foundation
@_spi(Selftest) import IOMMUFD
import Testing
import VFIO

extension HardwareSuite {
    /// Two real devices in one IOMMU context (libvfn's `iommu_ctx`) on intel-iommu.
    @Suite("Hardware: two devices in one DMA context",
           .enabled(if: Hardware.eduDevice != nil && Hardware.nvmeDevice != nil, Hardware.qemuDevicesReason), .serialized)
    struct DMAContextHardwareTests {
        static let paths: [VFIODevice.Path] = Hardware.hasLegacyContainer ? [.iommufdCdev, .legacyGroup] : [.iommufdCdev]

        @Test("edu and nvme join one context; a buffer mapped once before the second joined is copied by edu, every byte checked",
              arguments: paths)
        func sharedContext(path: VFIODevice.Path) throws {
            let context = try DMAContext(path: .only(path), system: LinuxSystem())
            let teaching = try context.claim(try #require(Hardware.eduDevice))
            let source = Hardware.pinnableBuffer(byteCount: 4096)
            let destination = Hardware.pinnableBuffer(byteCount: 4096)
            for index in 0..<4096 { source[index] = UInt8(truncatingIfNeeded: index &* 11 &+ 5) }
            let sourceMapping = try context.addressSpace.map(UnsafeRawBufferPointer(source), at: IOVA(0x10_0000), access: .readable)
            let storage = try context.claim(try #require(Hardware.nvmeDevice))
            let destinationMapping = try context.addressSpace.map(UnsafeRawBufferPointer(destination), at: IOVA(0x20_0000))
            if path == .iommufdCdev {
                // Both are attached to the context's IOAS; intel-iommu serves them with one compatible domain.
                #expect(teaching.device.attachedPageTable != nil && storage.device.attachedPageTable != nil)
                #expect(teaching.device.attachedPageTable == storage.device.attachedPageTable)
            }
            try teaching.device.setBusMaster(true)
            let edu = try EduDevice(teaching.device)
            let count = UInt64(EduDevice.maximumTransfer)
            try edu.copyToDevice(from: sourceMapping.iova, count: count)
            try edu.copyToHost(to: destinationMapping.iova, count: count)
            let mismatches = (0..<Int(count)).filter { destination[$0] != source[$0] }.count
            #expect(mismatches == 0, "\(mismatches) of \(count) bytes differ (\(path))")
            try teaching.device.setBusMaster(false)
            try context.addressSpace.unmap(destinationMapping)
            try context.addressSpace.unmap(sourceMapping)
        }
    }
}
