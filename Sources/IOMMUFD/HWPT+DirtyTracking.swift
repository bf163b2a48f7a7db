import CIOMMUFD
import SystemPackage

/// The pages of one mapping a device wrote since the last read: one bit per `pageSize`
/// page from ``iova``.
public struct DirtyBitmap: Sendable, Hashable {
    /// The first IOVA the bitmap covers.
    public var iova: IOVA
    /// The bytes each bit stands for.
    public var pageSize: UInt64
    /// How many pages it covers.
    public var pageCount: Int
    /// The bits, 64 pages per word, lowest page in the lowest bit.
    public var words: [UInt64]

    /// Creates a bitmap over `pageCount` pages of `pageSize` bytes from `iova`.
    public init(iova: IOVA, pageSize: UInt64, pageCount: Int, words: [UInt64]) {
        self.iova = iova
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.words = words
    }

    /// Whether page `index` (counted from ``iova``) is dirty.
    public func isDirty(page index: Int) -> Bool {
        index >= 0 && index < pageCount && words[index / 64] >> UInt64(index % 64) & 1 != 0
    }

    /// How many pages are dirty.
    public var dirtyPageCount: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// The dirty pages as IOVA ranges, adjacent pages joined: what a migration loop copies.
    public var dirtyRanges: [(iova: IOVA, length: UInt64)] {
        var ranges: [(iova: IOVA, length: UInt64)] = []
        var index = 0
        while index < pageCount {
            guard isDirty(page: index) else { index += 1; continue }
            let first = index
            while index < pageCount && isDirty(page: index) { index += 1 }
            ranges.append((IOVA(iova.rawValue + UInt64(first) * pageSize), UInt64(index - first) * pageSize))
        }
        return ranges
    }
}

extension HWPT {
    /// Turns dirty tracking on (the kernel clears what was dirty first, so the next read is a
    /// clean snapshot) or off. The HWPT must have been allocated with
    /// ``PagingHWPTFlags/dirtyTracking``.
    ///
    /// - Throws: `EOPNOTSUPP` for a HWPT allocated without dirty tracking.
    public func setDirtyTracking(_ enabled: Bool, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try IOMMUFDIOCTL.hwptSetDirtyTracking(ioas.seam, ioas.fd, hwpt: id.rawValue, flags: enabled ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
                                              fileID: fileID, line: line)
    }

    /// The pages of `mapping` written since the last read, one bit per `pageSize` (a power of
    /// two the mapping's start and length are multiples of); with `clear`, the bits are
    /// cleared in the page table as they are read.
    ///
    /// The kernel reads a range only up to its first hole and still answers success, so this
    /// reads one mapping, which has none, and owns the bitmap: it cannot report less than it
    /// was asked.
    ///
    /// - Throws: `EINVAL` for a page size the mapping is not aligned to, `EOPNOTSUPP` for a
    ///   HWPT allocated without dirty tracking.
    public func dirtyPages(of mapping: IOASMapping, pageSize: UInt64, clear: Bool = true,
                           fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> DirtyBitmap {
        guard pageSize > 0, pageSize & (pageSize - 1) == 0, mapping.length % pageSize == 0 else {
            throw IOMMUError(.hwptGetDirtyBitmap, .invalidArgument, IOMMUErrorContext(objectID: id.rawValue, iova: mapping.iova.rawValue, length: mapping.length),
                             fileID: fileID, line: line)
        }
        let pageCount = Int(mapping.length / pageSize)
        var words = [UInt64](repeating: 0, count: (pageCount + 63) / 64)
        var failure: IOMMUError?
        unsafe words.withUnsafeMutableBytes { bitmap in
            do throws(IOMMUError) {
                unsafe try IOMMUFDIOCTL.hwptGetDirtyBitmap(ioas.seam, ioas.fd, hwpt: id.rawValue, iova: mapping.iova.rawValue, length: mapping.length,
                                                           pageSize: pageSize, flags: clear ? 0 : IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
                                                           bitmap: bitmap, fileID: fileID, line: line)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return DirtyBitmap(iova: mapping.iova, pageSize: pageSize, pageCount: pageCount, words: words)
    }
}
