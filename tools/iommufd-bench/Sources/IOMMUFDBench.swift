import ArgumentParser
import CIOMMUFD
import CBenchBaseline
import DMAMemory
import Foundation
@_spi(Selftest) import IOMMUFD
import SystemPackage

/// Benchmarks (not tests): each prints a ratio against a baseline measured in the same run.
@main
struct IOMMUFDBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "iommufd-bench", abstract: "swift-iommufd benchmarks.", subcommands: [IoctlBench.self, MapBench.self, PoolBench.self, IOVAAllocatorBench.self])
}

/// The typed path (`IOAS.unmap` through `LinuxSystem`) against C loops making the same
/// ioctl, all on /dev/null where it fails at once with ENOTTY: what is measured is the
/// cost the Swift layer adds to a system call, error construction included. C issues it two
/// ways: through libc's `ioctl` reading `errno` (what a C library does; the target is set
/// against it) and in place with the shim's primitive, the same instruction sequence the
/// Swift side uses. `--success` measures the success path instead (see ``runSuccessPath()``).
struct IoctlBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ioctl")

    @Option(help: "Calls per measured round.") var iterations = 200_000
    @Option(help: "Measured rounds per side (the median is reported).") var rounds = 9
    @Flag(help: "The success path instead: IOAS map + unmap of one page on a real /dev/iommu (the VM lane has one), typed API against the same two ioctls from C.")
    var success = false

    func run() throws {
        if success { return try runSuccessPath() }
        let system = LinuxSystem()
        let fd = try system.open("/dev/null", flags: O_RDWR, mode: 0)
        let iommufd = IOMMUFD(adopting: FileDescriptor(rawValue: fd), system: system, closeOnDeinit: true)
        let ioas = IOAS._benchmarkAdopt(iommufd: iommufd, rawID: 1)
        let enotty = UInt64(Errno.inappropriateIOCTLForDevice.rawValue)

        func typedRound() -> Double {
            var failures = 0
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations {
                do { _ = try ioas.unmap(iova: IOVA(0x100000), length: 0x1000) } catch { failures &+= Int(error.errno.rawValue == 25 ? 1 : 0) }
            }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            precondition(failures == iterations, "every call must fail with ENOTTY")
            return Double(elapsed) / Double(iterations)
        }
        func cRound(_ loop: (Int32, UInt32, UInt64) -> UInt64) -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            let errors = loop(fd, 1, UInt64(iterations))
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            precondition(errors == enotty * UInt64(iterations), "every C call must fail with ENOTTY")
            return Double(elapsed) / Double(iterations)
        }
        func seamRound() -> Double {
            var failures = 0
            let seam: any SystemInterface = system
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations {
                var command = iommu_ioas_unmap(size: 24, ioas_id: 1, iova: 0x100000, length: 0x1000)
                let outcome = withUnsafeMutableBytes(of: &command) { bytes in
                    Result { () throws(Errno) in try IOMMUFDIOCTL.raw(IOCTLSeam(seam), fd, request: IOMMU_IOAS_UNMAP, argument: bytes.baseAddress) }
                }
                if case .failure = outcome { failures &+= 1 }
            }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            precondition(failures == iterations)
            return Double(elapsed) / Double(iterations)
        }
        _ = typedRound(); _ = cRound(ciommufd_bench_unmap_loop_libc); _ = cRound(ciommufd_bench_unmap_loop_in_place); _ = seamRound()
        var typed: [Double] = []
        var cLibc: [Double] = []
        var cInPlace: [Double] = []
        var seam: [Double] = []
        for _ in 0..<rounds {  // interleaved, so drift hits every side alike
            typed.append(typedRound())
            cLibc.append(cRound(ciommufd_bench_unmap_loop_libc))
            cInPlace.append(cRound(ciommufd_bench_unmap_loop_in_place))
            seam.append(seamRound())
        }
        print(String(format: "C, libc ioctl + errno:  %.1f ns/ioctl (median of %d x %d)", median(cLibc), rounds, iterations))
        print(String(format: "C, in place (the shim): %.1f ns/ioctl", median(cInPlace)))
        print(String(format: "seam only:              %.1f ns/ioctl (SystemInterface.ioctl through the existential, no typed layer)", median(seam)))
        print(String(format: "typed Swift:            %.1f ns/ioctl (IOAS.unmap via LinuxSystem, IOMMUError built and thrown per call)", median(typed)))
        print(String(format: "error path ratio typed/C (libc): %.3fx (target <= 1.10x)", ratioOfMedians(typed, cLibc)))
        print(String(format: "error path ratio typed/C (in place): %.3fx", ratioOfMedians(typed, cInPlace)))
    }

    /// `IOAS.map` + `IOAS.unmap` of one page against C issuing the same two ioctls, on a
    /// real iommufd with no device attached (nothing is pinned; the kernel's IOVA and area
    /// bookkeeping is the work): the `map` bench's workload with one anonymous page.
    func runSuccessPath() throws {
        let system = LinuxSystem()
        let ioas = try IOMMUFD(system: system).allocateIOAS()
        let page = try MapBenchMemory(.anonymous, length: PageSize.base.bytes, system: system)
        let measurement = try MapUnmapWorkload(ioas: ioas, source: .address(page.userAddress), length: UInt64(page.length), iova: IOVA(0x100000))
            .measure(rounds: rounds, size: .pairs(max(1, iterations / 10)))
        for line in measurement.report("success path, one page, no device attached") { print(line) }
    }
}
