import ArgumentParser
import IOMMUFD
import MockKernel
import Scenarios
import SystemPackage

/// Runs the differential scenarios against the real kernel and MockKernel and reports
/// how many agree. Meant for the VM lane (`hw-tests/vm/run-hardware-suite`), run as an
/// unprivileged user so memlock accounting applies as it does for a real driver.
@main
struct IOMMUFDScenarios: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommufd-scenarios",
        abstract: "Run the mock-versus-kernel differential scenarios."
    )

    @Option(help: "Directory of *.scenarios files.")
    var directory = "hw-tests/scenarios"

    @Option(help: "kernel, mock, or both (compare them).")
    var backend = "both"

    @Option(help: "The iommufd device node of the real kernel.")
    var device = "/dev/iommu"

    @Option(help: "Only scenarios whose name starts with this.")
    var only: String?

    @Flag(help: "Print every scenario, not only the disagreements.")
    var verbose = false

    @Flag(help: "Print every step with each backend's outcome (for writing scenarios).")
    var trace = false

    mutating func run() throws {
        let scenarios: [Scenario]
        do { scenarios = try ScenarioLibrary.load(directory: directory) } catch {
            throw ValidationError(error.description)
        }
        let selected = scenarios.filter { only == nil || $0.name.hasPrefix(only!) }
        let linux = LinuxSystem()
        if backend != "mock", let capabilities = ProcessCapabilities(system: linux), !capabilities.isUnprivileged {
            print("note: running with capabilities (CapEff \(String(capabilities.effective, radix: 16))); the scenarios expect an unprivileged process (CAP_IPC_LOCK changes accounting). Run through setpriv, as the VM lane does.")
        }
        let mock = ScenarioExecutor.mock(hardLimit: (try? linux.memoryLockLimit())?.maximum, devicePath: device)
        let kernel = ScenarioExecutor(devicePath: device) { linux }
        var backends: [(name: String, executor: ScenarioExecutor)] = []
        if backend == "kernel" || backend == "both" { backends.append(("kernel", kernel)) }
        if backend == "mock" || backend == "both" { backends.append(("mock", mock)) }
        guard !backends.isEmpty else { throw ValidationError("--backend is kernel, mock or both") }

        var agreeing = 0
        var steps = 0
        var agreeingSteps = 0
        var groups: [Character: (total: Int, agreeing: Int)] = [:]
        for scenario in selected {
            let verdict = ScenarioVerdict.judge(scenario, on: backends)
            steps += scenario.steps.count
            agreeingSteps += verdict.agreeingSteps
            groups[scenario.group, default: (0, 0)].total += 1
            if trace {
                print("scenario \(scenario.name)")
                let outcomeLists = verdict.runs.map { (try? $0.outcomes.get()) ?? [] }
                for (index, step) in scenario.steps.enumerated() {
                    let results = zip(verdict.runs, outcomeLists).map { run, outcomes in
                        "\(run.backend): " + (index < outcomes.count ? outcomes[index].description : "-")
                    }
                    print("    \(step.text)\n        \(results.joined(separator: " | "))")
                }
            }
            if verdict.agrees {
                agreeing += 1
                groups[scenario.group]!.agreeing += 1
                if verbose { print("agree     \(scenario.name)  \(scenario.title)") }
            } else {
                print("DISAGREE  \(scenario.name)  \(scenario.title)  (\(scenario.file):\(scenario.line))")
                for problem in verdict.problems { print("          \(problem)") }
            }
        }
        let names = backends.map(\.name).joined(separator: " vs ")
        let byGroup = groups.keys.sorted().map { "\($0) \(groups[$0]!.agreeing)/\(groups[$0]!.total)" }.joined(separator: ", ")
        print("scenarios: \(agreeing)/\(selected.count) agree (\(names)); steps: \(agreeingSteps)/\(steps); by group: \(byGroup)")
        if agreeing != selected.count { throw ExitCode(1) }
    }
}
