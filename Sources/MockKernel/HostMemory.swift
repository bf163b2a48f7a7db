import CIOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// The host memory behind the model's process memory. Anonymous mappings are heap blocks;
// a memfd is a host memfd, and each `mmap` of it is a host shared mapping of its own, so
// two mappings of one memfd have different addresses and the same pages, and a mapped
// memfd can grow, as on Linux (mm/shmem.c, mm/mmap.c). These are the only host calls the
// model makes.

/// Something the model holds on the host on the process's behalf, released its own way
/// once the call that dropped it commits.
enum HostResource: Equatable {
    /// A block from `UnsafeMutableRawPointer.allocate` (anonymous memory, BAR storage).
    case heap(UInt)
    /// A host `mmap` of a memfd: one of its views, or its own view for `pread`/`pwrite`
    /// and pinned `MAP_FILE` pages.
    case mapping(UInt, length: Int)
    /// The host memfd behind a model memfd.
    case descriptor(Int32)

    /// Gives it back to the host. The model never releases one it still refers to.
    func release() {
        switch self {
        case .heap(let base):
            unsafe UnsafeMutableRawPointer(bitPattern: base)?.deallocate()
        case .mapping(let base, let length):
            if let address = unsafe UnsafeMutableRawPointer(bitPattern: base) { _ = unsafe Glibc.munmap(address, length) }
        case .descriptor(let fd):
            _ = Glibc.close(fd)
        }
    }
}

/// Host memfds and their shared mappings, for the model's memfds.
enum HostMemoryFile {
    /// A new host memfd (close-on-exec), empty.
    static func create() throws(Errno) -> Int32 {
        let fd = unsafe ciommufd_memfd_create("mockkernel-memfd", CIOMMUFD_MFD_CLOEXEC)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        return fd
    }

    /// Sets the host memfd's size.
    static func resize(_ fd: Int32, to length: UInt64) throws(Errno) {
        guard Glibc.ftruncate(fd, off_t(length)) == 0 else { throw Errno(rawValue: errno) }
    }

    /// A shared, readable and writable host mapping of `length` bytes of `fd` from
    /// `offset`, at an address aligned to `alignment` (a hugetlb file's page size, so the
    /// model's hugepage mappings are aligned as the kernel's are).
    static func map(_ fd: Int32, offset: UInt64, length: UInt64, alignment: UInt64) throws(Errno) -> UInt {
        let protection = PROT_READ | PROT_WRITE
        guard alignment > UInt64(Glibc.getpagesize()) else {
            let address = unsafe Glibc.mmap(nil, Int(length), protection, MAP_SHARED, fd, off_t(offset))
            guard unsafe address != MAP_FAILED, let address = unsafe address else { throw Errno(rawValue: errno) }
            return UInt(bitPattern: address)
        }
        // Reserve room for an aligned start, put the file there, give back the rest.
        let reservation = Int(length + alignment)
        let reserved = unsafe Glibc.mmap(nil, reservation, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard unsafe reserved != MAP_FAILED, let reserved = unsafe reserved else { throw Errno(rawValue: errno) }
        let base = UInt(bitPattern: reserved)
        let start = (base + UInt(alignment) - 1) & ~(UInt(alignment) - 1)
        let placed = unsafe Glibc.mmap(UnsafeMutableRawPointer(bitPattern: start), Int(length), protection, MAP_SHARED | MAP_FIXED, fd, off_t(offset))
        guard unsafe placed != MAP_FAILED else {
            let error = Errno(rawValue: errno)
            _ = unsafe Glibc.munmap(reserved, reservation)
            throw error
        }
        if start > base { _ = unsafe Glibc.munmap(reserved, Int(start - base)) }
        let end = start + UInt(length)
        let reservedEnd = base + UInt(reservation)
        if reservedEnd > end { _ = unsafe Glibc.munmap(UnsafeMutableRawPointer(bitPattern: end)!, Int(reservedEnd - end)) }
        return start
    }
}
