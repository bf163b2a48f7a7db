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
        "marked 2 mappings",
        "second mapping, read, not cleared: dirty; ranges 0x1010000+0x4000",
        "second mapping, read again, cleared: dirty",
        "second mapping, read after the clear: clean",
        "first mapping: clean",
        "a page size the mapping is not aligned to: EINVAL",
        "tracking off, marking: EINVAL",
    ]

    /// The lines through `system` (a kernel with the selftest, or MockKernel). Marks and
    /// reads whole 16 KiB mappings 64 KiB apart: the kernel's mock IOMMU maps physically
    /// contiguous pages with larger leaves and a dirty bit belongs to a leaf, so anything
    /// finer would depend on where the pages landed.
    public static func lines(system: any SystemInterface) throws -> [String] {
        try ProbeOutcome.withSelftestDevice(system: system) { iommufd, ioas, device in
            try ProbeOutcome.withMemory(system: system, length: 2 * length) { memory in try lines(iommufd, ioas, device, memory) }
        }
    }

    static let length = 16 << 10

    static func lines(_ iommufd: IOMMUFD, _ ioas: IOAS, _ device: SelftestMockDevice, _ memory: UnsafeMutableRawPointer) throws -> [String] {
        let base = UInt64(UInt(bitPattern: memory))
        let first = try ioas.map(userAddress: base, length: UInt64(length), at: IOVA(0x100_0000))
        let second = try ioas.map(userAddress: base + UInt64(length), length: UInt64(length), at: IOVA(0x101_0000))
        defer { try? ioas.unmap(first); try? ioas.unmap(second) }
        var lines: [String] = []
        let outcome = ProbeOutcome.of
        func state(_ bitmap: DirtyBitmap) -> String { bitmap.dirtyPageCount == 0 ? "clean" : "dirty" }
        let plain = try ioas.allocateHWPT(for: device.deviceID)
        lines.append("tracking on a HWPT without the flag: " + outcome { () throws(IOMMUError) in try plain.setDirtyTracking(true) })
        try plain.destroy()
        let hwpt = try ioas.allocateHWPT(for: device.deviceID, flags: [.dirtyTracking])
        try hwpt.setDirtyTracking(true)
        // Page 1 of 64 KiB pages from the first mapping: the second mapping's start; page 3 is unmapped.
        let marked = try iommufd.selftestMarkDirty(hwpt.id, iova: first.iova, pageSize: 64 << 10, pageCount: 4, pages: [1, 3])
        lines.append("marked \(marked) mappings")
        let kept = try hwpt.dirtyPages(of: second, pageSize: UInt64(length), clear: false)
        let ranges = kept.dirtyRanges.map { "0x\(String($0.iova.rawValue, radix: 16))+0x\(String($0.length, radix: 16))" }
        lines.append("second mapping, read, not cleared: \(state(kept)); ranges " + ranges.joined(separator: " "))
        lines.append("second mapping, read again, cleared: " + state(try hwpt.dirtyPages(of: second, pageSize: UInt64(length))))
        lines.append("second mapping, read after the clear: " + state(try hwpt.dirtyPages(of: second, pageSize: UInt64(length))))
        lines.append("first mapping: " + state(try hwpt.dirtyPages(of: first, pageSize: UInt64(length))))
        lines.append("a page size the mapping is not aligned to: " + outcome { () throws(IOMMUError) in _ = try hwpt.dirtyPages(of: first, pageSize: 12 << 10) })
        try hwpt.setDirtyTracking(false)
        lines.append("tracking off, marking: " + outcome { () throws(IOMMUError) in
            _ = try iommufd.selftestMarkDirty(hwpt.id, iova: first.iova, pageSize: 4096, pageCount: 4, pages: [0])
        })
        try hwpt.destroy()
        return lines
    }
}
