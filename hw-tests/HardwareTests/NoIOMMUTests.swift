import Edu
import Foundation
import IOMMUFD
import SystemPackage
import Testing
import VFIO

extension HardwareSuite {
    /// The unsafe no-IOMMU cdev mode (a boot of its own: hw-tests/vm/run with
    /// IOMMUFD_VM_IOMMU=noiommu, vfio.enable_unsafe_noiommu_mode=1, no IOMMU in the
    /// machine): edu is `/dev/vfio/devices/noiommu-vfioN`, binds to an iommufd and attaches
    /// to an IOAS (a software table), and DMAs to the physical addresses
    /// `IOMMU_IOAS_NOIOMMU_GET_PA` gives. Run as root: opening a no-IOMMU cdev and asking
    /// for physical addresses need CAP_SYS_RAWIO.
    @Suite("Hardware: the no-IOMMU cdev mode", .enabled(if: Hardware.noIOMMUMode, "needs the lane's no-IOMMU boot (IOMMUFD_VM_IOMMU=noiommu)"),
           .serialized)
    struct NoIOMMUTests {
        /// The errno of a call, or `nil` when it succeeded.
        static func errno(_ body: () throws(IOMMUError) -> Void) -> Errno? {
            do throws(IOMMUError) { try body(); return nil } catch { return error.errno }
        }

        @Test("edu through its noiommu cdev: hardware info EOPNOTSUPP, physical addresses only once the IOAS has edu's software domain, DMA to them byte for byte")
        func eduDMAToPhysicalAddresses() throws {
            let address = try #require(Hardware.eduDevice)
            let path = try VFIODevice.cdevPath(of: address, system: LinuxSystem())
            #expect(path.hasPrefix("/dev/vfio/devices/noiommu-vfio"), "\(path)")
            let context = try DMAContext(path: .only(.iommufdCdev), system: LinuxSystem())
            guard case .iommufd(let ioas) = context.addressSpace else { Issue.record("not an iommufd context"); return }

            // Before edu is attached the IOAS has no domain: no physical addresses.
            let buffer = Hardware.pinnableBuffer(byteCount: 8192)
            let early = try unsafe ioas.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            #expect(Self.errno { () throws(IOMMUError) in _ = try ioas.physicalRanges(of: early.iova, length: 8192) } == .notSupported)

            let teaching = try context.claim(address)
            let deviceID = try #require(teaching.device.deviceID)
            #expect(Self.errno { () throws(IOMMUError) in _ = try ioas.iommufd.hardwareInfo(of: deviceID) } == .notSupported, "no IOMMU, no hardware info")
            let ranges = try ioas.physicalRanges(of: early.iova, length: 8192)
            #expect(ranges.reduce(0) { $0 + $1.length } == 8192)
            #expect(Self.errno { () throws(IOMMUError) in _ = try ioas.physicalRanges(of: IOVA(0x90_0000), length: 4096) } == .noSuchFileOrDirectory)
            func physical(_ offset: UInt64) -> UInt64? {
                var start: UInt64 = 0
                for range in ranges {
                    if offset < start + range.length { return range.address + (offset - start) }
                    start += range.length
                }
                return nil
            }
            for index in 0..<4096 { buffer[index] = UInt8(truncatingIfNeeded: index &* 13 &+ 1) }
            try teaching.device.setBusMaster(true)
            let edu = try EduDevice(teaching.device)
            let count = UInt64(EduDevice.maximumTransfer)
            try edu.copyToDevice(from: IOVA(try #require(physical(0))), count: count)
            try edu.copyToHost(to: IOVA(try #require(physical(4096))), count: count)
            try teaching.device.setBusMaster(false)
            let mismatches = (0..<Int(count)).filter { buffer[4096 + $0] != buffer[$0] }.count
            #expect(mismatches == 0, "\(mismatches) of \(count) bytes differ")
            try ioas.unmap(early)
            #expect(Self.errno { () throws(IOMMUError) in _ = try ioas.physicalRanges(of: early.iova, length: 4096) } == .noSuchFileOrDirectory)
        }
    }
}
