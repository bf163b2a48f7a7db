import CIOMMUFD
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The memory rules MockKernel models for the pinned-memory manager, each with the errno
/// Linux gives (mm/madvise.c, mm/mempolicy.c, mm/memfd.c, fs/hugetlbfs), on raw seam calls.
@Suite("MockKernel memory rules: madvise, mbind, move_pages, hugetlb memfd and hugetlbfs")
struct MemoryRulesTests {
    func expectErrno(_ expected: Errno, _ what: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("\(what): succeeded, expected \(expected)")
        } catch let error as Errno {
            #expect(error == expected, "\(what)")
        } catch {
            Issue.record("\(what): \(error)")
        }
    }

    @Test("madvise: a hole is ENOMEM, populating a read-only mapping EFAULT, unknown advice and THP on hugetlb EINVAL")
    func madviseRules() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 1])
        let page = try kernel.mmap(address: nil, length: 8192, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        try kernel.munmap(page + 4096, length: 4096)
        expectErrno(.noMemory, "range over a hole") { try kernel.madvise(page, length: 8192, advice: CIOMMUFD_MADV_POPULATE_WRITE) }
        expectErrno(.invalidArgument, "unaligned start") { try kernel.madvise(page + 1, length: 4095, advice: CIOMMUFD_MADV_POPULATE_WRITE) }
        expectErrno(.invalidArgument, "unknown advice") { try kernel.madvise(page, length: 4096, advice: 999) }
        try kernel.madvise(page, length: 4096, advice: CIOMMUFD_MADV_POPULATE_WRITE)
        let readOnly = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        expectErrno(.badAddress, "populate-write of read-only memory") { try kernel.madvise(readOnly, length: 4096, advice: CIOMMUFD_MADV_POPULATE_WRITE) }
        let fd = try kernel.memfdCreate("huge", flags: CIOMMUFD_MFD_HUGETLB)
        try kernel.ftruncate(fd, length: Int64(twoMiB))
        let huge = try kernel.mmap(address: nil, length: Int(twoMiB), protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: 0)
        expectErrno(.invalidArgument, "MADV_HUGEPAGE on hugetlb") { try kernel.madvise(huge, length: Int(twoMiB), advice: CIOMMUFD_MADV_HUGEPAGE) }
        try kernel.munmap(huge, length: Int(twoMiB)); try kernel.close(fd)
        try kernel.munmap(page, length: 4096); try kernel.munmap(readOnly, length: 4096)
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("mbind: offline node, empty mask, unknown mode or flag EINVAL; unmapped EFAULT; MPOL_MF_STRICT on misplaced pages EIO")
    func mbindRules() throws {
        let kernel = memoryMachine(nodes: 2)
        let page = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        expectErrno(.invalidArgument, "node 2 of 2") { try kernel.mbind(page, length: 4096, mode: CIOMMUFD_MPOL_BIND, nodeMask: 1 << 2, flags: 0) }
        expectErrno(.invalidArgument, "empty mask") { try kernel.mbind(page, length: 4096, mode: CIOMMUFD_MPOL_BIND, nodeMask: 0, flags: 0) }
        expectErrno(.invalidArgument, "unknown mode") { try kernel.mbind(page, length: 4096, mode: 42, nodeMask: 1, flags: 0) }
        expectErrno(.invalidArgument, "unknown flag") { try kernel.mbind(page, length: 4096, mode: CIOMMUFD_MPOL_BIND, nodeMask: 1, flags: 0x80) }
        expectErrno(.invalidArgument, "MPOL_DEFAULT with nodes") { try kernel.mbind(page, length: 4096, mode: CIOMMUFD_MPOL_DEFAULT, nodeMask: 1, flags: 0) }
        expectErrno(.badAddress, "unmapped range") { try kernel.mbind(page + 4096, length: 4096, mode: CIOMMUFD_MPOL_BIND, nodeMask: 1, flags: 0) }
        try kernel.madvise(page, length: 4096, advice: CIOMMUFD_MADV_POPULATE_WRITE)  // present on node 0
        expectErrno(.ioError, "strict, pages elsewhere, not moved") { try kernel.mbind(page, length: 4096, mode: CIOMMUFD_MPOL_BIND, nodeMask: 2, flags: CIOMMUFD_MPOL_MF_STRICT) }
        try kernel.mbind(page, length: 4096, mode: CIOMMUFD_MPOL_BIND, nodeMask: 2, flags: CIOMMUFD_MPOL_MF_STRICT | CIOMMUFD_MPOL_MF_MOVE)
        #expect(try kernel.pageNodes([UnsafeRawPointer(page)]) == [1])
        try kernel.munmap(page, length: 4096)
    }

    @Test("move_pages: -ENOENT for a page not faulted in, -EFAULT for an address not mapped")
    func movePagesStatus() throws {
        let kernel = memoryMachine()
        let pages = try kernel.mmap(address: nil, length: 8192, protection: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        #expect(try kernel.pageNodes([UnsafeRawPointer(pages)]) == [-ENOENT])
        try kernel.madvise(pages, length: 8192, advice: CIOMMUFD_MADV_POPULATE_WRITE)
        try kernel.munmap(pages + 4096, length: 4096)
        #expect(try kernel.pageNodes([UnsafeRawPointer(pages), UnsafeRawPointer(pages + 4096)]) == [0, -EFAULT])
        try kernel.munmap(pages, length: 4096)
    }

    @Test("hugetlb memfd: unknown size or size bits without MFD_HUGETLB EINVAL; partial hugepage ftruncate EINVAL; short pool ENOMEM at mmap")
    func hugetlbMemfdRules() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 1])
        expectErrno(.invalidArgument, "1 GiB without a pool") { _ = try kernel.memfdCreate("g", flags: CIOMMUFD_MFD_HUGETLB | (30 << CIOMMUFD_MFD_HUGE_SHIFT)) }
        expectErrno(.invalidArgument, "size bits alone") { _ = try kernel.memfdCreate("g", flags: 21 << CIOMMUFD_MFD_HUGE_SHIFT) }
        let fd = try kernel.memfdCreate("h", flags: CIOMMUFD_MFD_HUGETLB | (21 << CIOMMUFD_MFD_HUGE_SHIFT))
        expectErrno(.invalidArgument, "half a hugepage") { try kernel.ftruncate(fd, length: 1 << 20) }
        try kernel.ftruncate(fd, length: Int64(2 * twoMiB))
        expectErrno(.noMemory, "two pages from a pool of one") {
            _ = try kernel.mmap(address: nil, length: Int(2 * twoMiB), protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: 0)
        }
        #expect(kernel.freeHugePages(twoMiB) == 1, "a failed mmap reserves nothing")
        let one = try kernel.mmap(address: nil, length: Int(twoMiB), protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: fd, offset: 0)
        #expect(kernel.freeHugePages(twoMiB) == 0)
        #expect(String(decoding: try kernel.readFile("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"), as: UTF8.self) == "0\n")
        try kernel.munmap(one, length: Int(twoMiB))
        try kernel.close(fd)
        #expect(kernel.freeHugePages(twoMiB) == 1, "pages return with the file")
    }

    @Test("hugetlbfs: O_EXCL on an existing name EEXIST, opening a missing name without O_CREAT ENOENT")
    func hugetlbfsRules() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 1], hugetlbfs: ["/dev/hugepages": twoMiB])
        let fd = try kernel.open("/dev/hugepages/a", flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        expectErrno(.fileExists, "O_EXCL again") { _ = try kernel.open("/dev/hugepages/a", flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o600) }
        expectErrno(.noSuchFileOrDirectory, "no O_CREAT") { _ = try kernel.open("/dev/hugepages/b", flags: O_RDWR, mode: 0) }
        try kernel.removeFile("/dev/hugepages/a")
        expectErrno(.noSuchFileOrDirectory, "unlinked") { try kernel.removeFile("/dev/hugepages/a") }
        try kernel.close(fd)
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }
}
