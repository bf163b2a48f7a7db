import ArgumentParser
import Foundation
import IOMMUFD
import MockKernel
import SystemPackage

/// `iommufd-probe`: tells an operator whether iommufd works on this machine and what to do if not.
/// (Issue 4 grows it into the full S1-S19 / D1-D14 report; this is the foundation's minimal probe.)
@main
struct IOMMUFDProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommufd-probe",
        abstract: "Report whether /dev/iommu works here and which iommufd commands the kernel supports.")

    enum Backend: String, ExpressibleByArgument, CaseIterable {
        case kernel, mock
    }

    @Option(help: "Which system to probe: the real kernel, or the in-process MockKernel.")
    var backend: Backend = .kernel

    @Option(help: "The iommufd device node.")
    var path = "/dev/iommu"

    @Flag(help: "Print the findings as JSON.")
    var json = false

    func run() throws {
        let system: any SystemInterface = backend == .mock ? MockKernel() : LinuxSystem()
        let report = ProbeReport.make(path: path, system: system)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.humanReadable)
        }
        if report.findings.contains(where: { $0.level == .fail }) { throw ExitCode(1) }
    }
}

/// The probe's findings, one per check.
struct ProbeReport: Codable {
    enum Level: String, Codable { case pass = "PASS", warn = "WARN", fail = "FAIL", info = "INFO", skip = "SKIP" }

    struct Finding: Codable {
        var id: String
        var level: Level
        var summary: String
        var evidence: String
        var fix: String?
    }

    var schemaVersion = 1
    var findings: [Finding] = []

    static func make(path: String, system: any SystemInterface) -> ProbeReport {
        var report = ProbeReport()
        let iommufd: IOMMUFD
        do {
            iommufd = try IOMMUFD(path: path, system: system)
            report.findings.append(Finding(id: "S3", level: .pass, summary: "\(path) opens read-write", evidence: "open(\(path), O_RDWR|O_CLOEXEC) = fd \(iommufd.fileDescriptor)"))
        } catch {
            report.findings.append(Finding(
                id: "S3", level: .fail, summary: "\(path) cannot be opened",
                evidence: "open(\(path)) failed: \(error.errno.description) (errno \(error.errno.rawValue))",
                fix: [error.explanation?.meaning, error.explanation?.fix].compactMap { $0 }.joined(separator: " ")))
            if let iommuUnits = try? system.listDirectory("/sys/class/iommu"), !iommuUnits.isEmpty {
                report.findings.append(Finding(id: "S7", level: .info, summary: "IOMMU units present", evidence: iommuUnits.joined(separator: ", ")))
            } else {
                report.findings.append(Finding(
                    id: "S7", level: .fail, summary: "no IOMMU is enabled", evidence: "/sys/class/iommu is empty or missing",
                    fix: "enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)."))
            }
            return report
        }
        do {
            let supported = try iommufd.supportedCommands()
            let names = IOMMUCommand.allCases.map { "\($0.name)=\(supported.contains($0) ? "yes" : "no")" }
            let missing = IOMMUCommand.allCases.filter { !supported.contains($0) }
            report.findings.append(Finding(
                id: "S16", level: .info, summary: "\(supported.count) of \(IOMMUCommand.allCases.count) iommufd commands supported",
                evidence: names.joined(separator: " "),
                fix: missing.isEmpty ? nil : "missing: \(missing.map(\.name).joined(separator: ", ")) (a newer kernel adds them)"))
        } catch {
            report.findings.append(Finding(id: "S16", level: .fail, summary: "the command probe failed", evidence: error.description))
        }
        do {
            let ioas = try iommufd.allocateIOAS()
            let ranges = try ioas.iovaRanges()
            try ioas.destroy()
            report.findings.append(Finding(id: "S17", level: .pass, summary: "IOAS alloc, IOVA ranges and destroy work",
                                           evidence: "ranges \(ranges.ranges.map(\.description).joined(separator: " ")) alignment \(ranges.alignment)"))
        } catch {
            report.findings.append(Finding(id: "S17", level: .fail, summary: "IOAS round trip failed", evidence: error.description,
                                           fix: error.explanation?.fix))
        }
        return report
    }

    var humanReadable: String {
        findings.map { finding in
            var line = "[\(finding.level.rawValue)] \(finding.id) \(finding.summary)\n       evidence: \(finding.evidence)"
            if let fix = finding.fix, !fix.isEmpty { line += "\n       fix: \(fix)" }
            return line
        }.joined(separator: "\n")
    }
}
