import ArgumentParser
import Foundation
import IOMMUFD
import MockKernel
import ProbeKit
import VFIO

/// `iommufd-probe`: tells an operator what works on this machine for user-space
/// drivers over iommufd and VFIO, and exactly how to fix what does not.
@main
struct IOMMUFDProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommufd-probe",
        abstract: "Check the kernel, the IOMMU, limits and devices for iommufd/VFIO user-space drivers.",
        discussion: """
        Checks S1-S19 (system) and D1-D13 (devices) of the project's REFERENCE.md, each with a level \
        (PASS, INFO, SKIP, WARN, FAIL), the evidence read, and a fix. Exit status: 0 ready, 1 a FAIL, \
        3 WARNs only, 64 bad usage.
        """)

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case kernel, mock
    }

    @Option(help: "Which system to probe: the real kernel, or the in-process MockKernel.")
    var backend: Backend = .kernel

    @Option(help: "The iommufd device node.")
    var path = "/dev/iommu"

    @Option(name: .customLong("device"), help: "A PCI device to check (dddd:bb:dd.f); repeatable. Default: every device on vfio-pci.")
    var devices: [String] = []

    @Flag(help: "Claim each device briefly: bind, attach, IOVA ranges, hardware info (VT-d cap/ecap decoded).")
    var deep = false

    @Flag(help: "Print the findings as JSON (schema in the README).")
    var json = false

    func run() throws {
        var addresses: [PCIAddress] = []
        for text in devices {
            do { addresses.append(try PCIAddress(parsing: text)) } catch { throw ValidationError(error.description) }
        }
        let system: any SystemInterface = backend == .mock ? MockKernel() : LinuxSystem()
        let report = Probe(system: system, iommuPath: path).run(devices: addresses, deep: deep)
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
