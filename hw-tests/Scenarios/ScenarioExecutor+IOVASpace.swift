import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// Scenario verbs for the IOVA space: ranges, allow, reserve, option.
extension ScenarioExecutor {
    // MARK: IOVA space

    /// `ranges IOAS [capacity=N]`: outputs `num`, `alignment` and, when they fit, `ranges`.
    func iovaRanges(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let ioas = step.words.first else { throw session.fail("ranges IOAS") }
        let fd = try session.context(step)
        let capacity = Int(try session.argument(step, "capacity", default: 16))
        // One guard entry past the capacity catches a kernel writing too far.
        var storage = [iommu_iova_range](repeating: iommu_iova_range(start: 0xdead, last: 0xbeef), count: capacity + 1)
        let id = try session.objectID(ioas)
        let outcome = storage.withUnsafeMutableBufferPointer { entries in
            Result { () throws(IOMMUError) in
                try IOMMUFDIOCTL.ioasIOVARanges(session.seam, fd, ioas: id, into: UnsafeMutableBufferPointer(rebasing: entries[0..<capacity]),
                                                fileID: #fileID, line: step.line)
            }
        }
        let overrun = storage[capacity].start != 0xdead || storage[capacity].last != 0xbeef
        let answer: IOMMUFDIOCTL.IOVARangesAnswer
        switch outcome {
        case .success(let value):
            answer = value
        case .failure(let error):
            var outputs = ["num": "\(error.context.reportedCount ?? 0)"]
            if overrun { outputs["overrun"] = "yes" }
            return Outcome(errno: error.errno, outputs: outputs)
        }
        var outputs = ["num": "\(answer.count)"]
        if overrun { outputs["overrun"] = "yes" }
        outputs["alignment"] = ScenarioSession.hex(answer.alignment)
        outputs["ranges"] = storage.prefix(Int(answer.count))
            .map { ScenarioSession.hex($0.start) + "-" + ScenarioSession.hex($0.last) }.joined(separator: ",")
        return Outcome(outputs: outputs)
    }

    /// `allow IOAS [START-LAST ...]`: replaces the allowed ranges (none clears them).
    func allowIOVAs(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let ioas = step.words.first else { throw session.fail("allow IOAS [START-LAST ...]") }
        let fd = try session.context(step)
        var ranges: [iommu_iova_range] = []
        for word in step.words.dropFirst() {
            let bounds = word.split(separator: "-", maxSplits: 1).map(String.init)
            guard bounds.count == 2 else { throw session.fail("a range is START-LAST, got \(word)") }
            ranges.append(iommu_iova_range(start: try session.number(bounds[0]), last: try session.number(bounds[1])))
        }
        let id = try session.objectID(ioas)
        let outcome = ranges.withUnsafeBufferPointer { entries in
            Result { () throws(IOMMUError) in
                try IOMMUFDIOCTL.ioasAllowIOVAs(session.seam, fd, ioas: id, ranges: entries, fileID: #fileID, line: step.line)
            }
        }
        if case .failure(let error) = outcome { return Outcome(errno: error.errno) }
        return Outcome()
    }

    /// `reserve IOAS start= length=` (selftest `IOMMU_TEST_OP_ADD_RESERVED`).
    func addReserved(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let ioas = step.words.first else { throw session.fail("reserve IOAS start= length=") }
        let fd = try session.context(step)
        try SelftestIOCTL.addReserved(session.seam, fd, ioas: try session.objectID(ioas), start: try session.argument(step, "start"),
                                      length: try session.argument(step, "length"), fileID: #fileID, line: step.line)
        return Outcome()
    }

    /// `option OBJECT huge_pages|rlimit_mode get|set=N` (OBJECT 0 for rlimit_mode).
    func option(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("option OBJECT NAME get|set=N") }
        let fd = try session.context(step)
        let object = try session.objectID(step.words[0])
        let option: UInt32
        switch step.words[1] {
        case "huge_pages": option = IOMMU_OPTION_HUGE_PAGES
        case "rlimit_mode": option = IOMMU_OPTION_RLIMIT_MODE
        case let other: option = UInt32(truncatingIfNeeded: try session.number(other))
        }
        if let value = step.arguments["set"] {
            _ = try IOMMUFDIOCTL.option(session.seam, fd, option: option, op: IOMMU_OPTION_OP_SET, object: object,
                                        value: try session.number(value), fileID: #fileID, line: step.line)
            return Outcome()
        }
        guard step.has("get") else { throw session.fail("option needs get or set=N") }
        let value = try IOMMUFDIOCTL.option(session.seam, fd, option: option, op: IOMMU_OPTION_OP_GET, object: object, value: 0,
                                            fileID: #fileID, line: step.line)
        return Outcome(outputs: ["value": "\(value)"])
    }
}
