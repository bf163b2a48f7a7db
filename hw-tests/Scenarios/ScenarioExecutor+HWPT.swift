import CIOMMUFD
import IOMMUFD
import SystemPackage

// Scenario verb for hardware page tables: hwpt.
extension ScenarioExecutor {
    /// `hwpt NAME PT DEVICE [flags=nest+dirty+pasid+fault|N] [fault_id=] [data_type=]
    /// [data=PAYLOAD [data_len=]]`: `IOMMU_HWPT_ALLOC` for DEVICE (a bound device's name or
    /// `D.idev`) on PT (an IOAS: a paging HWPT; a HWPT: a nested one, with a payload's
    /// bytes as its vendor data). Binds NAME to the new HWPT; outputs `id`.
    func allocateHWPT(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("hwpt NAME PT DEVICE") }
        let fd = try session.context(step)
        var flags: UInt32 = 0
        for word in (step.arguments["flags"] ?? "").split(separator: "+") where !word.isEmpty {
            switch word {
            case "nest": flags |= IOMMU_HWPT_ALLOC_NEST_PARENT
            case "dirty": flags |= IOMMU_HWPT_ALLOC_DIRTY_TRACKING
            case "pasid": flags |= IOMMU_HWPT_ALLOC_PASID
            case "fault": flags |= IOMMU_HWPT_FAULT_ID_VALID
            default: flags |= UInt32(truncatingIfNeeded: try session.number(String(word)))
            }
        }
        var data: UnsafeRawBufferPointer?
        if let name = step.arguments["data"] {
            let payload = try session.buffer(name)
            let length = Int(try session.argument(step, "data_len", default: UInt64(payload.count)))
            guard length <= payload.count else { throw session.fail("data_len past the payload \(name)") }
            data = UnsafeRawBufferPointer(rebasing: payload[..<length])
        }
        let id = try IOMMUFDIOCTL.hwptAlloc(session.seam, fd, device: try session.objectID(step.words[2]),
                                            pageTable: try session.objectID(step.words[1]), flags: flags,
                                            dataType: UInt32(truncatingIfNeeded: try session.argument(step, "data_type", default: 0)),
                                            data: data, faultID: UInt32(truncatingIfNeeded: try session.argument(step, "fault_id", default: 0)),
                                            fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }
}
