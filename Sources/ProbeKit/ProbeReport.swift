/// What `iommufd-probe` found: one finding per check of REFERENCE.md §3, with the
/// evidence it read and, when something is wrong, how to fix it.
public struct ProbeReport: Codable, Sendable {
    /// How a check came out, ordered from best to worst (`PASS` < `INFO` < `SKIP` < `WARN` < `FAIL`).
    public enum Level: String, Codable, Sendable, Comparable {
        /// `pass`: the check found what a user-space driver needs; `info`: a fact that needs no action; `skip`: the check
        /// could not run (e.g. config space unreadable); `warn`: works, with a limitation (exit code 3); `fail`: blocks
        /// use (exit code 1).
        case pass = "PASS", info = "INFO", skip = "SKIP", warn = "WARN", fail = "FAIL"

        var rank: Int {
            switch self {
            case .pass: 0
            case .info: 1
            case .skip: 2
            case .warn: 3
            case .fail: 4
            }
        }

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rank < rhs.rank }
    }

    /// The result of one check: its id, level, summary, evidence and fix.
    public struct Finding: Codable, Sendable {
        /// The check's id: `S1`...`S19` for the system, `D1`...`D14` for a device.
        public var id: String
        /// How the check came out.
        public var level: Level
        /// One line saying what was found.
        public var summary: String
        /// What was read, verbatim where possible (paths, values, errnos).
        public var evidence: String
        /// What to do about it, for WARN and FAIL.
        public var fix: String?
        /// The device the finding is about (`dddd:bb:dd.f`), for D checks.
        public var device: String?

        /// Creates a finding from the check's id, its level, a one-line summary, the evidence read, the fix (`nil` when
        /// there is nothing to do) and the device's address (`nil` for a system check).
        public init(id: String, level: Level, summary: String, evidence: String, fix: String? = nil, device: String? = nil) {
            self.id = id
            self.level = level
            self.summary = summary
            self.evidence = evidence
            self.fix = fix
            self.device = device
        }
    }

    /// Bumped when a field changes meaning.
    public var schemaVersion = 2
    /// The findings in the order the checks ran: system checks first, then each device's.
    public var findings: [Finding] = []

    /// Creates an empty report (schema version 2, no findings).
    public init() {}

    /// Appends a finding; the parameters are those of ``Finding/init(id:level:summary:evidence:fix:device:)``.
    public mutating func add(_ id: String, _ level: Level, _ summary: String, evidence: String, fix: String? = nil, device: String? = nil) {
        findings.append(Finding(id: id, level: level, summary: summary, evidence: evidence, fix: fix, device: device))
    }

    /// The worst level found.
    public var worst: Level { findings.map(\.level).max() ?? .pass }

    /// 0: ready; 1: at least one FAIL; 3: WARNs but no FAIL.
    public var exitCode: Int32 {
        switch worst {
        case .fail: 1
        case .warn: 3
        default: 0
        }
    }

    /// The report for a terminal: one block per finding, failures first within a section.
    public var humanReadable: String {
        var lines: [String] = []
        for finding in findings {
            let subject = finding.device.map { " [\($0)]" } ?? ""
            lines.append("[\(finding.level.rawValue)] \(finding.id)\(subject) \(finding.summary)")
            lines.append("       evidence: \(finding.evidence)")
            if let fix = finding.fix, !fix.isEmpty { lines.append("       fix: \(fix)") }
        }
        let counts = [ProbeReport.Level.fail, .warn, .pass, .info, .skip].map { level in
            "\(findings.filter { $0.level == level }.count) \(level.rawValue)"
        }
        lines.append("")
        lines.append("summary: " + counts.joined(separator: ", ") + (worst == .fail ? " — iommufd is NOT usable here as is" : worst == .warn ? " — usable, with warnings" : " — ready"))
        return lines.joined(separator: "\n")
    }
}
