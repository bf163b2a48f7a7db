import ArgumentParser
import Foundation
import IOMMUFD
import MockKernel
import PCIDatabase
import ProbeKit
import VFIO

/// `iommufd-probe`: tells an operator what works on this machine for user-space
/// drivers over iommufd and VFIO, and exactly how to fix what does not; and moves
/// devices to vfio-pci and back.
@main
struct IOMMUFDProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommufd-probe",
        abstract: "Check the kernel, the IOMMU, limits and devices for iommufd/VFIO user-space drivers.",
        subcommands: [Check.self, Bind.self, Unbind.self],
        defaultSubcommand: Check.self)
}

enum Backend: String, ExpressibleByArgument, CaseIterable {
    case kernel, mock

    /// The system to talk to; the mock is a machine with QEMU's edu, e1000e and nvme on vfio-pci.
    var system: any SystemInterface {
        switch self {
        case .kernel:
            return LinuxSystem()
        case .mock:
            var configuration = MockKernel.Configuration()
            configuration.addPCIDevice(.edu())
            configuration.addPCIDevice(.e1000e())
            configuration.addPCIDevice(.nvme())
            return MockKernel(configuration: configuration)
        }
    }
}

func parseAddress(_ text: String) throws -> PCIAddress {
    do { return try PCIAddress(parsing: text) } catch { throw ValidationError(error.description) }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every check (the default).",
        discussion: """
        Checks S1-S19 (system) and D1-D14 (devices), listed in docs/probe-checks.md, each with a level \
        (PASS, INFO, SKIP, WARN, FAIL), the evidence read, and a fix. Exit status: 0 ready, 1 a FAIL, \
        3 WARNs only, 64 bad usage.
        """)

    @Option(help: "Which system to probe: the real kernel, or the in-process MockKernel.")
    var backend: Backend = .kernel

    @Option(help: "The iommufd device node.")
    var path = "/dev/iommu"

    @Option(name: .customLong("device"), help: "A PCI device to check (dddd:bb:dd.f); repeatable. Default: every device on vfio-pci.")
    var devices: [String] = []

    @Flag(help: "Claim each device briefly: bind, attach, IOVA ranges, hardware info (VT-d cap/ecap decoded); the legacy group path when there is no iommufd.")
    var deep = false

    @Flag(help: "Print the findings as JSON (schema in the README).")
    var json = false

    func run() throws {
        let addresses = try devices.map(parseAddress)
        // libpci reads the real sysfs: names and extended capabilities of real devices only.
        let library = backend == .kernel ? LibPCI() : nil
        let report = Probe(system: backend.system, iommuPath: path, library: library).run(devices: addresses, deep: deep)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.humanReadable)
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

struct Bind: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give a PCI device to vfio-pci (driver_override + drivers_probe); needs root.",
        discussion: "Refuses when the device's IOMMU group backs a mounted filesystem or a routed network interface, unless --force.")

    @Argument(help: "The device, dddd:bb:dd.f.")
    var device: String

    @Option(help: "The driver to bind to.")
    var driver = "vfio-pci"

    @Flag(help: "Also write driverctl's /etc/driverctl.d/pci-<device>, so the choice survives a reboot.")
    var persist = false

    @Flag(help: "Bind even when the host uses the device's group.")
    var force = false

    @Option(help: "The real kernel, or the in-process MockKernel.")
    var backend: Backend = .kernel

    func run() throws {
        let address = try parseAddress(device)
        do {
            let outcome = try DriverBinding(system: backend.system).bind(address, to: driver, persist: persist, force: force)
            outcome.steps.forEach { print("  \($0)") }
            print("\(outcome.address): \(outcome.previousDriver ?? "no driver") -> \(outcome.driver ?? "no driver")")
        } catch {
            FileHandle.standardError.write(Data("iommufd-probe bind: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Unbind: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Give a PCI device back to its own driver and drop the driverctl override; needs root.")

    @Argument(help: "The device, dddd:bb:dd.f.")
    var device: String

    @Option(help: "The real kernel, or the in-process MockKernel.")
    var backend: Backend = .kernel

    func run() throws {
        let address = try parseAddress(device)
        do {
            let outcome = try DriverBinding(system: backend.system).unbind(address)
            outcome.steps.forEach { print("  \($0)") }
            print("\(outcome.address): \(outcome.previousDriver ?? "no driver") -> \(outcome.driver ?? "no driver")")
        } catch {
            FileHandle.standardError.write(Data("iommufd-probe unbind: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
