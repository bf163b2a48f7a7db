import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Dirty tracking on the selftest mock IOMMU, one step at a time: a HWPT without the flag
/// refuses tracking, pages marked by `IOMMU_TEST_OP_DIRTY` read back as bits and ranges,
/// with and without clearing, at two page sizes, and marking with tracking off. The same
/// function runs on the kernel (the VM lane) and on MockKernel, so the two can be compared
/// line by line.
public enum DirtyTrackingProbe {
    /// What Linux 7.3 answered in the VM lane.
    public static let linuxAnswer = [
        "tracking on a HWPT without the flag: EOPNOTSUPP",
        "marked 4 pages",
        "read, not cleared: pages 1 2 3 9; ranges 0x1001000+0x3000 0x1009000+0x1000",
        "read again, cleared: pages 1 2 3 9",
        "read after the clear: pages none",
        "marked 1 page, read by 64 KiB: pages 0",
        "a page size the mapping is not aligned to: EINVAL",
        "tracking off, marking: EINVAL",
    ]

    /// The lines through `system` (a kernel with the selftest, or MockKernel).
    public static func lines(system: any SystemInterface) throws -> [String] {
        let iommufd = try IOMMUFD(system: system)
        let ioas = try iommufd.allocateIOAS()
        let device = try ioas.selftestAttachMockDomain()
        defer { try? iommufd.destroy(device.selftestID) }
        let length = 64 << 10
        let memory = try system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE,
                                     flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        defer { try? system.munmap(memory, length: length) }
        try system.madvise(memory, length: length, advice: CIOMMUFD_MADV_POPULATE_WRITE)
        let mapping = try ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: UInt64(length), at: IOVA(0x100_0000))
        defer { try? ioas.unmap(mapping) }
        var lines: [String] = []
        func outcome(_ body: () throws(IOMMUError) -> Void) -> String {
            do throws(IOMMUError) { try body(); return "ok" } catch { return ErrnoName.name(of: error.errno) }
        }
        func describe(_ bitmap: DirtyBitmap) -> String {
            let pages = (0..<bitmap.pageCount).filter { bitmap.isDirty(page: $0) }.map(String.init)
            return "pages " + (pages.isEmpty ? "none" : pages.joined(separator: " "))
        }
        let plain = try ioas.allocateHWPT(for: device.deviceID)
        lines.append("tracking on a HWPT without the flag: " + outcome { () throws(IOMMUError) in try plain.setDirtyTracking(true) })
        try plain.destroy()
        let hwpt = try ioas.allocateHWPT(for: device.deviceID, flags: [.dirtyTracking])
        try hwpt.setDirtyTracking(true)
        let marked = try iommufd.selftestMarkDirty(hwpt.id, iova: mapping.iova, pageSize: 4096, pageCount: 16, pages: [1, 2, 3, 9])
        lines.append("marked \(marked) pages")
        let kept = try hwpt.dirtyPages(of: mapping, pageSize: 4096, clear: false)
        let ranges = kept.dirtyRanges.map { "0x\(String($0.iova.rawValue, radix: 16))+0x\(String($0.length, radix: 16))" }
        lines.append("read, not cleared: \(describe(kept)); ranges " + ranges.joined(separator: " "))
        lines.append("read again, cleared: " + describe(try hwpt.dirtyPages(of: mapping, pageSize: 4096)))
        lines.append("read after the clear: " + describe(try hwpt.dirtyPages(of: mapping, pageSize: 4096)))
        let one = try iommufd.selftestMarkDirty(hwpt.id, iova: mapping.iova, pageSize: 4096, pageCount: 16, pages: [12])
        lines.append("marked \(one) page, read by 64 KiB: " + describe(try hwpt.dirtyPages(of: mapping, pageSize: 64 << 10)))
        lines.append("a page size the mapping is not aligned to: " + outcome { () throws(IOMMUError) in _ = try hwpt.dirtyPages(of: mapping, pageSize: 48 << 10) })
        try hwpt.setDirtyTracking(false)
        lines.append("tracking off, marking: " + outcome { () throws(IOMMUError) in
            _ = try iommufd.selftestMarkDirty(hwpt.id, iova: mapping.iova, pageSize: 4096, pageCount: 16, pages: [0])
        })
        try hwpt.destroy()
        return lines
    }
}
