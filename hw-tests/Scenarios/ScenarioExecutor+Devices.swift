import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// Scenario verbs for devices and the process: mock_domain, replace (the kernel selftest's
// mock domain), rlimit.
extension ScenarioExecutor {
    // MARK: Devices (the kernel selftest's mock domain)

    /// `mock_domain IOAS NAME`: a selftest mock device attached to IOAS; binds NAME (the
    /// device object), NAME.hwpt and NAME.idev.
    func mockDomain(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("mock_domain IOAS NAME") }
        let fd = try session.context(step)
        let answer = try SelftestIOCTL.mockDomain(session.seam, fd, pageTable: try session.objectID(step.words[0]), fileID: #fileID, line: step.line)
        let name = step.words[1]
        let context = step.arguments["in"] ?? ScenarioSession.defaultContext
        session.bind(name, id: answer.selftestID, context: context)
        session.bind(name + ".hwpt", id: answer.hwptID, context: context)
        session.bind(name + ".idev", id: answer.deviceID, context: context)
        return Outcome(outputs: ["id": "\(answer.selftestID)", "hwpt": "\(answer.hwptID)", "idev": "\(answer.deviceID)"])
    }

    /// `replace DEVICE PT`: moves a mock device to another IOAS or HWPT; the output
    /// `hwpt` is the page table it is now attached to.
    func replace(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("replace DEVICE PT") }
        let fd = try session.context(step)
        let hwpt = try SelftestIOCTL.mockDomainReplace(session.seam, fd, device: try session.objectID(step.words[0]),
                                                       pageTable: try session.objectID(step.words[1]), fileID: #fileID, line: step.line)
        session.bind(step.words[0] + ".hwpt", id: hwpt, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["hwpt": "\(hwpt)"])
    }


    // MARK: Process limits

    /// `rlimit memlock=SIZE`: lowers the soft `RLIMIT_MEMLOCK` for the rest of the scenario.
    func setMemlock(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let limit = try session.system.memoryLockLimit()
        try session.system.setMemoryLockLimit(ResourceLimit(current: try session.argument(step, "memlock"), maximum: limit.maximum))
        return Outcome()
    }
}
