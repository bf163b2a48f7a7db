import Foundation
import IOMMUFD
import MockKernel
import Scenarios
import Testing

extension HardwareSuite {
    /// Every differential scenario on the real kernel and on MockKernel: both must give the
    /// expected results, and each other's, step by step.
    @Suite("Hardware: mock versus kernel scenarios", 
           .enabled(if: Hardware.hasSelftest, Hardware.selftestReason),
           .enabled(if: Hardware.unprivileged, Hardware.unprivilegedReason))
    struct DifferentialScenarioTests {
        static let directory = ScenarioLibrary.directory(besides: "\(#filePath)")

        @Test("every scenario agrees between MockKernel and this kernel")
        func agreement() throws {
            let scenarios = try ScenarioLibrary.load(directory: Self.directory)
            let hardLimit = try LinuxSystem().memoryLockLimit().maximum
            let mock = ScenarioExecutor.mock(hardLimit: hardLimit)
            let kernel = ScenarioExecutor { LinuxSystem() }
            var agreeing = 0
            for scenario in scenarios {
                let verdict = ScenarioVerdict.judge(scenario, on: [("kernel", kernel), ("mock", mock)])
                if verdict.agrees { agreeing += 1 }
                #expect(verdict.agrees, "\(scenario.name): \(verdict.problems.map(\.description).joined(separator: "\n"))")
            }
            print("differential scenarios: \(agreeing)/\(scenarios.count) agree between the kernel and MockKernel")
            #expect(scenarios.count >= 100)
        }
    }
}
