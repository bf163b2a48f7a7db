import CIOMMUFD
import DMAMemory
import Foundation
import IOMMUFD
import SystemPackage

/// The kinds of memory `iommufd-bench map` maps.
enum MapBenchBacking: Hashable, CustomStringConvertible {
    /// 4 KiB pages of private anonymous memory (`MAP_PRIVATE | MAP_ANONYMOUS`) with
    /// `MADV_NOHUGEPAGE`: the VM lane's kernel runs THP "always", which would otherwise back
    /// every aligned 2 MiB of it with a huge page.
    case anonymous
    /// 4 KiB pages of a plain (shmem) memfd.
    case memfd
    /// A hugetlb memfd (`MFD_HUGETLB` with `MFD_HUGE_2MB` or `MFD_HUGE_1GB`).
    case hugetlb(PageSize)

    /// The page size the memory is made of.
    var pageSize: PageSize {
        if case .hugetlb(let size) = self { return size }
        return .base
    }

    var description: String {
        switch self {
        case .anonymous: "4 KiB anonymous"
        case .memfd: "4 KiB shmem memfd"
        case .hugetlb(let size): "\(size) hugetlb memfd"
        }
    }
}

/// The memory of one `map` case, faulted in, alive for the whole case.
///
/// Anonymous memory is mapped here (every page touched once); the memfds are a
/// `PinnedMemory` of DMAMemory, which checks the hugepage pool first and says what is
/// missing when it is short.
struct MapBenchMemory: ~Copyable {
    /// The first byte.
    let address: UnsafeMutableRawPointer
    /// The length in bytes, whole pages.
    let length: Int
    /// The memfd behind the memory (for `IOMMU_IOAS_MAP_FILE`), or `nil` for anonymous memory.
    let file: FileDescriptor?
    /// The memfd-backed memory; `nil` for anonymous memory.
    private let pinned: PinnedMemory?
    /// Whether `deinit` unmaps the memory itself (anonymous memory; `PinnedMemory` unmaps and closes its own).
    private let unmapsOnDeinit: Bool
    private let system: any SystemInterface

    /// Maps and faults in `length` bytes of `backing`.
    ///
    /// - Throws: `DMAMemoryError`; `isMissingBackingResource` is true when the kernel has no
    ///   such hugepage size or its pool is short.
    init(_ backing: MapBenchBacking, length: Int, system: any SystemInterface) throws(DMAMemoryError) {
        precondition(length > 0 && length % backing.pageSize.bytes == 0, "whole pages of \(backing.pageSize)")
        self.length = length
        self.system = system
        guard backing == .anonymous else {
            let store: BackingStore = backing == .memfd ? .memfd : .hugetlbMemfd(backing.pageSize)
            let memory = try PinnedMemory(length: length, backing: .exactly(store), system: system)
            address = memory.address
            file = memory.fileDescriptor
            pinned = consume memory
            unmapsOnDeinit = false
            return
        }
        let mapped: UnsafeMutableRawPointer
        do {
            mapped = try system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE,
                                     flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        } catch { throw .system(.mmap, error) }
        do {
            try system.madvise(mapped, length: length, advice: CIOMMUFD_MADV_NOHUGEPAGE)
        } catch {
            do { try system.munmap(mapped, length: length) } catch { Self.warn("munmap after a failed madvise", error) }
            throw .system(.madvise, error)
        }
        for offset in stride(from: 0, to: length, by: PageSize.base.bytes) {
            mapped.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self)
        }
        address = mapped
        file = nil
        pinned = nil
        unmapsOnDeinit = true
    }

    /// The memory's address as the kernel takes it (`user_va`).
    var userAddress: UInt64 { UInt64(UInt(bitPattern: address)) }

    deinit {
        guard unmapsOnDeinit else { return }
        do { try system.munmap(address, length: length) } catch { Self.warn("munmap of the anonymous memory", error) }
    }

    /// Reports a failed cleanup on standard error: nothing else can be done about it here.
    private static func warn(_ what: String, _ error: Errno) {
        FileHandle.standardError.write(Data("map: \(what) failed: \(error)\n".utf8))
    }
}
