import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import SystemPackage
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// RLIMIT_MEMLOCK lowered to 64 KiB, then 64 KiB pinned through iommufd (a mock domain,
/// per-user accounting) and 64 KiB through a type1 container (edu's group): whether the
/// two draw on one budget or two, and what `VmPin`/`VmLck` show. The same function runs on
/// the kernel (the VM lane) and on MockKernel; the limit is put back before it returns.
public enum MemlockBudgetProbe {
    /// What Linux 7.3 answered in the VM lane (the hardware test checks it there).
    public static let linuxAnswer = [
        "iommufd maps 64 KiB: ok",
        "iommufd maps 4 KiB more: ENOMEM",
        "type1 maps 64 KiB beside them: ok",
        "status moved from VmLck:0kB VmPin:0kB to VmLck:64kB VmPin:64kB",
    ]

    /// The lines for edu at `address` through `system`.
    public static func lines(_ address: PCIAddress, system: any SystemInterface) throws -> [String] {
        let saved = try system.memoryLockLimit()
        try system.setMemoryLockLimit(ResourceLimit(current: 64 << 10, maximum: saved.maximum))
        defer { try? system.setMemoryLockLimit(saved) }
        let length = 64 << 10
        let memory = try system.mmap(address: nil, length: 2 * length + 4096, protection: PROT_READ | PROT_WRITE,
                                     flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        defer { try? system.munmap(memory, length: 2 * length + 4096) }
        var lines: [String] = []
        let outcome = ProbeOutcome.of
        func status() throws -> String {
            let text = String(decoding: try system.readFile("/proc/self/status"), as: UTF8.self)
            return text.split(separator: "\n").filter { $0.hasPrefix("VmPin:") || $0.hasPrefix("VmLck:") }
                .map { $0.filter { !$0.isWhitespace } }.sorted().joined(separator: " ")
        }
        let before = try status()
        let iommufd = try IOMMUFD(system: system)
        let ioas = try iommufd.allocateIOAS()
        let device = try ioas.selftestAttachMockDomain()
        let base = UInt64(UInt(bitPattern: memory))
        lines.append("iommufd maps 64 KiB: " + outcome { () throws(IOMMUError) in _ = try unsafe ioas.map(userAddress: base, length: UInt64(length)) })
        lines.append("iommufd maps 4 KiB more: " + outcome { () throws(IOMMUError) in
            _ = try unsafe ioas.map(userAddress: base + UInt64(2 * length), length: 4096)
        })
        let owned = try VFIOPCIDevice(address, path: .only(.legacyGroup), system: system)
        var type1Mapping: DMAMapping?
        lines.append("type1 maps 64 KiB beside them: " + outcome { () throws(IOMMUError) in
            type1Mapping = try unsafe owned.addressSpace.map(userAddress: base + UInt64(length), length: UInt64(length), at: IOVA(0x10_0000))
        })
        lines.append("status moved from \(before) to \(try status())")
        _ = try ioas.unmapAll()
        try iommufd.destroy(device.selftestID)
        if let type1Mapping { try owned.addressSpace.unmap(type1Mapping) }
        return lines
    }
}
