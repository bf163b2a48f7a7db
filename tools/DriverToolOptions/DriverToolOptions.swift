import ArgumentParser
import Foundation
import IOMMUFD
import MockKernel
import VFIO

/// The options the driver tools (`nvme-identify`, `nvme-perf`, `e1000e-pktgen`) share: which
/// VFIO path opens the device, whether the kernel or MockKernel plays it, and JSON output.
public struct DriverToolOptions: ParsableArguments {
    /// auto, iommufd or type1.
    @Option(help: "auto, iommufd (the cdev) or type1 (the legacy group and container).")
    public var path = "auto"

    /// kernel or mock.
    @Option(help: "kernel, or mock (MockKernel plays the device at the given address).")
    public var backend = "kernel"

    /// Whether to print JSON.
    @Flag(help: "Print JSON instead of text.")
    public var json = false

    /// Options at their defaults.
    public init() {}

    /// The path `--path` names.
    public func pathChoice() throws -> VFIOPCIDevice.PathChoice {
        switch path {
        case "auto": return .automatic
        case "iommufd": return .only(.iommufdCdev)
        case "type1": return .only(.legacyGroup)
        default: throw ValidationError("--path is auto, iommufd or type1")
        }
    }

    /// The system `--backend` names: the kernel, or a MockKernel with `devices` whose
    /// behaviour `install` adds.
    public func system(mockDevices devices: [MockKernel.PCIDevice], install: (MockKernel) -> Void) throws -> any SystemInterface {
        switch backend {
        case "kernel":
            return LinuxSystem()
        case "mock":
            var configuration = MockKernel.Configuration()
            for device in devices { configuration.addPCIDevice(device) }
            let kernel = MockKernel(configuration: configuration)
            install(kernel)
            return kernel
        default:
            throw ValidationError("--backend is kernel or mock")
        }
    }
}

/// Parses `text` as a PCI address, or fails validation with the parser's reason.
public func parsePCIAddress(_ text: String) throws -> PCIAddress {
    do { return try PCIAddress(parsing: text) } catch { throw ValidationError(error.description) }
}

/// Prints `value` as JSON with sorted keys (`pretty`: indented).
public func printJSON(_ value: some Encodable, pretty: Bool = false) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
