import ArgumentParser
import DriverToolOptions
import DMAMemory
import Foundation
import IOMMUFD
import MockKernel
import NVMe
import VFIO

/// `nvme-identify`: what `nvme id-ctrl` and `nvme id-ns` print for a controller bound to
/// vfio-pci, read by this toolkit's NVMe driver in user space (the kernel's nvme driver is
/// not involved), as text or JSON.
@main
struct NVMeIdentify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvme-identify",
        abstract: "Identify an NVMe controller and its namespaces through VFIO, in user space.")

    @Argument(help: "The controller's PCI address (dddd:bb:dd.f), bound to vfio-pci.")
    var device: String

    @OptionGroup var options: DriverToolOptions

    /// What is printed.
    struct Report: Codable {
        struct Namespace: Codable {
            var nsid: UInt32
            var nsze: UInt64
            var lbaSize: Int
        }
        var device: String
        var vid: String
        var sn: String
        var mn: String
        var fr: String
        var mdts: UInt8
        var nn: UInt32
        var namespaces: [Namespace]
    }

    mutating func run() throws {
        let address = try parsePCIAddress(device)
        let system = try options.system(mockDevices: [.nvme(address: address.description, group: 4)]) { kernel in
            kernel.installNVMeModel(address.description)
        }
        let owned = try VFIOPCIDevice(address, path: try options.pathChoice(), system: system)
        try owned.device.setBusMaster(true)
        let controller = try NVMeController(owned.device, manager: try DMAMemoryManager(addressSpace: owned.addressSpace))
        guard let identity = controller.identity else { throw ValidationError("no Identify Controller answer") }
        var namespaces: [Report.Namespace] = []
        for nsid in try controller.activeNamespaces() {
            let namespace = try controller.identifyNamespace(nsid)
            namespaces.append(.init(nsid: nsid, nsze: namespace.blockCount, lbaSize: namespace.blockSize))
        }
        try controller.shutdown()
        try owned.device.setBusMaster(false)
        let report = Report(device: address.description, vid: "0x" + String(identity.vendorID, radix: 16), sn: identity.serialNumber,
                            mn: identity.modelNumber, fr: identity.firmwareRevision, mdts: identity.maximumDataTransferShift,
                            nn: identity.namespaceCount, namespaces: namespaces)
        if options.json {
            try printJSON(report, pretty: true)
        } else {
            print("NVMe Identify Controller (\(report.device)):")
            print("vid     : \(report.vid)")
            print("sn      : \(report.sn)")
            print("mn      : \(report.mn)")
            print("fr      : \(report.fr)")
            print("mdts    : \(report.mdts)")
            print("nn      : \(report.nn)")
            for namespace in namespaces {
                print("namespace \(namespace.nsid): nsze \(namespace.nsze) (\(namespace.nsze * UInt64(namespace.lbaSize)) bytes), lba size \(namespace.lbaSize)")
            }
        }
    }
}
