import IOMMUFD
import MockKernel
import Testing
import VFIO

/// Devices, contexts and mapped BARs cross threads: the compiler checks it (these types are
/// `Sendable`), and the device's changing state sits behind a lock.
@Suite("devices and their BARs cross threads")
struct SendableDeviceTests {
    @Test("a device is read from several tasks at once, and a BAR mapping moves to another task", .timeLimit(.minutes(1)))
    func crossThreads() async throws {
        let kernel = pciMachine()
        do {
            let owned = try VFIOPCIDevice(e1000e, path: .only(.iommufdCdev), system: kernel)
            let device = owned.device
            let vendors = try await withThrowingTaskGroup(of: UInt16.self) { group in
                for _ in 0..<8 {
                    group.addTask { try device.readConfiguration(UInt16.self, at: PCIConfiguration.vendorID) }
                }
                return try await group.reduce(into: [UInt16]()) { $0.append($1) }
            }
            #expect(vendors == Array(repeating: 0x8086, count: 8))
            let region = try device.map(device.region(0))
            let value = await Task.detached { () -> UInt32 in
                region.write32(0xfeed_beef, at: 0x10)
                return region.read32(at: 0x10)
            }.value
            #expect(value == 0xfeed_beef)
            let context: DMAContext = owned.context
            await Task.detached { #expect(context.path == .iommufdCdev) }.value
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }
}
