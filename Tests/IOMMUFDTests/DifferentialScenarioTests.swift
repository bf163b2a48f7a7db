import IOMMUFD
import IOMMUFDSystem
import MockKernel
import Scenarios
import Testing

/// The differential scenarios of hw-tests/scenarios, run against MockKernel. The VM
/// lane runs the same files against a real kernel (`iommufd-scenarios`), and both must
/// give every expected result.
@Suite("Differential scenarios on MockKernel")
struct DifferentialScenarioTests {
    static let directory = ScenarioLibrary.directory(besides: "\(#filePath)")

    static let scenarios: [Scenario] = (try? ScenarioLibrary.load(directory: directory)) ?? []

    static let mock = ScenarioExecutor.mock()

    @Test("the scenario files parse, and there are at least 100 covering groups A-F and H")
    func library() throws {
        let scenarios = try ScenarioLibrary.load(directory: Self.directory)
        #expect(scenarios.count >= 100)
        let groups = Set(scenarios.map(\.group))
        for group in "ABCDEFHKQVWX" { #expect(groups.contains(group), "no scenario for group \(group)") }
        // The VFIO device, interrupt and legacy paths (groups Q, V, W, X): at least 80, run on both backends in the VM lane.
        #expect(scenarios.filter { "QVWX".contains($0.group) }.count >= 80)
    }

    @Test("the ABI scenarios' sizes follow the descriptor table: A1 one below the minimum, A2 one past the struct, A4 the struct")
    func abiScenarioSizes() throws {
        let abi = try ScenarioLibrary.load(directory: Self.directory).filter { ["A1", "A2", "A4"].contains($0.name.prefix(2)) }
        #expect(abi.count >= 3 * 9, "three per iommufd command the scenarios cover")
        var wrong: [String] = []
        for scenario in abi {
            for step in scenario.steps where step.verb == "raw" {
                guard let number = UInt(step.words[0].dropFirst(2), radix: 16), let size = step.arguments["size"].flatMap({ Int($0) }) else { continue }
                guard let descriptor = IOMMUOperation.allCases.compactMap(\.ioctl).first(where: { $0.family == .iommufd && $0.request & 0xff == number }) else {
                    wrong.append("\(scenario.name): no command 0x\(String(number, radix: 16))"); continue
                }
                let expected = switch scenario.name.prefix(2) {
                case "A1": descriptor.minimumSize - 1
                case "A2": descriptor.kernelSize + 1
                default: descriptor.kernelSize
                }
                if size != expected { wrong.append("\(scenario.name): size=\(size), the table says \(expected)") }
            }
        }
        #expect(wrong.isEmpty, "\(wrong)")
    }

    @Test("every scenario gives its expected results on MockKernel", arguments: scenarios.map(\.name))
    func scenario(_ name: String) throws {
        let scenario = try #require(Self.scenarios.first { $0.name == name })
        let verdict = ScenarioVerdict.judge(scenario, on: [("mock", Self.mock)])
        #expect(verdict.problems.isEmpty, "\(scenario.file):\(scenario.line) \(scenario.title)\n\(verdict.problems.map(\.description).joined(separator: "\n"))")
    }

    @Test("a wrong expectation is reported, with the line and what the backend gave")
    func judgeCatchesMismatch() throws {
        let text = """
        scenario Z1.wrong "expects the wrong errno"
            ioas A
            destroy 99 => EBUSY
        end
        """
        let scenario = try ScenarioParser.parse(text, file: "inline").first!
        let verdict = ScenarioVerdict.judge(scenario, on: [("mock", Self.mock)])
        #expect(verdict.problems.count == 1)
        #expect(verdict.problems.first?.line == 3)
        #expect(verdict.problems.first?.message.contains("ENOENT") == true)
    }

    @Test("two backends that differ are a disagreement even when neither is checked")
    func judgeCatchesDisagreement() throws {
        let text = """
        scenario Z2.differ "ids differ between backends"
            ioas A => any
        end
        """
        let scenario = try ScenarioParser.parse(text, file: "inline").first!
        let withoutIOMMUFD = ScenarioExecutor {
            var configuration = MockKernel.Configuration()
            configuration.iommuDevice = .absent
            return MockKernel(configuration: configuration)
        }
        let verdict = ScenarioVerdict.judge(scenario, on: [("mock", Self.mock), ("no-iommufd", withoutIOMMUFD)])
        #expect(verdict.problems.contains { $0.message.contains("backends disagree") })
    }

    @Test("scenario mistakes are reported, not run", arguments: [
        "scenario Q1 \"x\"\n    frobnicate A\nend",
        "scenario Q2 \"x\"\n    map A B\nend",
        "scenario Q3 \"x\"\n    ioas A => EWHATEVER\nend",
        "scenario Q4 \"x\"\n    ioas A\n",
    ])
    func malformed(_ text: String) {
        let outcome = Result { () throws(ScenarioParser.Failure) in try ScenarioParser.parse(text, file: "inline") }
        switch outcome {
        case .failure: break
        case .success(let scenarios):
            let verdict = ScenarioVerdict.judge(scenarios[0], on: [("mock", Self.mock)])
            #expect(verdict.problems.contains { $0.message.contains("scenario error") })
        }
    }
}
