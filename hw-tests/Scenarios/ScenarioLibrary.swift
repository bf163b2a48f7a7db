import IOMMUFD
import SystemPackage

/// The scenario files of a directory (`*.scenarios`), read through the system seam.
public enum ScenarioLibrary {
    /// `hw-tests/scenarios` of the checkout that holds `sourceFile` (pass `#filePath`).
    public static func directory(besides sourceFile: String) -> String {
        for marker in ["/hw-tests/", "/Tests/"] {
            if let root = sourceFile.split(separator: marker).first, root.count < sourceFile.count {
                return String(root) + "/hw-tests/scenarios"
            }
        }
        return "hw-tests/scenarios"
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, errno: Errno)
        case malformed(ScenarioParser.Failure)
        case duplicate(name: String)

        public var description: String {
            switch self {
            case .unreadable(let path, let errno): "cannot read \(path): \(errno)"
            case .malformed(let failure): failure.description
            case .duplicate(let name): "scenario \(name) is defined twice"
            }
        }
    }

    public static func load(directory: String, system: any SystemInterface = LinuxSystem()) throws(LoadError) -> [Scenario] {
        let names: [String]
        do { names = try system.listDirectory(directory) } catch { throw .unreadable(path: directory, errno: error) }
        var scenarios: [Scenario] = []
        var seen: Set<String> = []
        for name in names.sorted() where name.hasSuffix(".scenarios") {
            let path = directory + "/" + name
            let bytes: [UInt8]
            do { bytes = try system.readFile(path) } catch { throw .unreadable(path: path, errno: error) }
            let parsed: [Scenario]
            do { parsed = try ScenarioParser.parse(String(decoding: bytes, as: UTF8.self), file: name) } catch { throw .malformed(error) }
            for scenario in parsed {
                guard seen.insert(scenario.name).inserted else { throw .duplicate(name: scenario.name) }
            }
            scenarios += parsed
        }
        return scenarios
    }
}

/// One backend's results for a scenario.
public struct BackendRun: Sendable {
    public var backend: String
    /// One outcome per step, or the scenario's own mistake.
    public var outcomes: Result<[Outcome], ScriptError>
}

/// A scenario run on one or more backends, judged step by step: every backend must give
/// the expected result, and all backends must give the same outcome (ids, IOVAs,
/// byte counts, ranges included).
public struct ScenarioVerdict: Sendable {
    public var scenario: Scenario
    public var runs: [BackendRun]

    public struct Problem: Sendable, CustomStringConvertible {
        public var line: Int
        public var text: String
        public var message: String
        public var description: String { "line \(line): `\(text)`: \(message)" }
    }

    public var problems: [Problem] {
        var problems: [Problem] = []
        for run in runs {
            if case .failure(let error) = run.outcomes {
                problems.append(Problem(line: error.line, text: "", message: "[\(run.backend)] scenario error: \(error.message)"))
            }
        }
        let outcomeLists = runs.compactMap { try? $0.outcomes.get() }
        guard outcomeLists.count == runs.count else { return problems }
        for (index, step) in scenario.steps.enumerated() {
            let outcomes = outcomeLists.map { $0[index] }
            for (run, outcome) in zip(runs, outcomes) where !outcome.satisfies(step.expected) {
                problems.append(Problem(line: step.line, text: step.text, message: "[\(run.backend)] got \(outcome)"))
            }
            if let first = outcomes.first, outcomes.contains(where: { $0 != first }) {
                let described = zip(runs, outcomes).map { "\($0.backend): \($1)" }.joined(separator: "; ")
                problems.append(Problem(line: step.line, text: step.text, message: "backends disagree: \(described)"))
            }
        }
        return problems
    }

    /// Steps where every backend gave the same outcome and it was the expected one.
    public var agreeingSteps: Int {
        let outcomeLists = runs.compactMap { try? $0.outcomes.get() }
        guard outcomeLists.count == runs.count else { return 0 }
        return scenario.steps.indices.filter { index in
            let outcomes = outcomeLists.map { $0[index] }
            return outcomes.allSatisfy { $0 == outcomes[0] && $0.satisfies(scenario.steps[index].expected) }
        }.count
    }

    public var agrees: Bool { problems.isEmpty }

    public static func judge(_ scenario: Scenario, on backends: [(name: String, executor: ScenarioExecutor)]) -> ScenarioVerdict {
        let runs = backends.map { backend in
            BackendRun(backend: backend.name, outcomes: Result { () throws(ScriptError) in try backend.executor.run(scenario) })
        }
        return ScenarioVerdict(scenario: scenario, runs: runs)
    }
}
