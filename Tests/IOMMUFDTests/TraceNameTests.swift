import CIOMMUFD
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// MockKernel's trace names say what was touched: a sysfs attribute is not an eventfd.
@Suite("trace names")
struct TraceNameTests {
    @Test("reading a sysfs attribute and an eventfd's counter trace under different names, as do writes")
    func sysfsAndEventfdAreApart() throws {
        var configuration = MockKernel.Configuration()
        configuration.files["/sys/module/vfio_pci/parameters/disable_idle_d3"] = Array("N\n".utf8)
        let kernel = MockKernel(configuration: configuration)
        let fd = try kernel.eventfd(initialValue: 1, flags: Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        defer { try? kernel.close(fd) }
        kernel.clearTrace()
        _ = try kernel.readFile("/sys/module/vfio_pci/parameters/disable_idle_d3")
        var counter: UInt64 = 0
        _ = try withUnsafeMutableBytes(of: &counter) { (bytes) throws(Errno) in try kernel.read(fd, into: bytes) }
        try kernel.writeFile("/sys/module/vfio_pci/parameters/disable_idle_d3", Array("Y\n".utf8))
        var one: UInt64 = 1
        _ = try withUnsafeBytes(of: &one) { (bytes) throws(Errno) in try kernel.write(fd, from: bytes) }
        #expect(kernel.trace.map(\.name) == ["readFile", "read", "writeFile", "write"])
    }
}
