import CIOMMUFD
import Glibc
import SystemPackage
@_spi(Selftest) import IOMMUFD

/// How the probes write one step's result: the same words on the kernel and on the mock,
/// so that their lines can be compared.
enum ProbeOutcome {
    /// `ok`, or the errno's name.
    static func of(_ body: () throws(IOMMUError) -> Void) -> String {
        do throws(IOMMUError) { try body(); return "ok" } catch { return ErrnoName.name(of: error.errno) }
    }

    /// The handled count of an invalidation, or the errno's name with the count the kernel
    /// wrote back.
    static func invalidation(_ body: () throws(IOMMUError) -> Int) -> String {
        do throws(IOMMUError) { return String(try body()) } catch {
            return ErrnoName.name(of: error.errno) + " handled \(error.context.handledCount.map(String.init) ?? "?")"
        }
    }

    /// Runs `body` with `length` bytes of populated anonymous memory from `system` (`shared`:
    /// `MAP_SHARED`, else `MAP_PRIVATE`), unmapped afterwards.
    static func withMemory<Result>(system: any SystemInterface, length: Int, shared: Bool = false,
                                   _ body: (UnsafeMutableRawPointer) throws -> Result) throws -> Result {
        let memory = try system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE,
                                     flags: (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, fd: -1, offset: 0)
        defer { try? system.munmap(memory, length: length) }
        try system.madvise(memory, length: length, advice: CIOMMUFD_MADV_POPULATE_WRITE)
        return try body(memory)
    }

    /// Runs `body` with a fresh iommufd over `system`, an IOAS and a selftest mock device
    /// attached to it; the device is removed afterwards, whatever `body` did.
    static func withSelftestDevice<Result>(system: any SystemInterface,
                                           _ body: (IOMMUFD, IOAS, SelftestMockDevice) throws -> Result) throws -> Result {
        let iommufd = try IOMMUFD(system: system)
        let ioas = try iommufd.allocateIOAS()
        let device = try ioas.selftestAttachMockDomain()
        defer { try? iommufd.destroy(device.selftestID) }
        return try body(iommufd, ioas, device)
    }
}
