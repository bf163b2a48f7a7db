import CIOMMUFD
import Glibc
import IOMMUFD
import VFIO
import MockKernel
import SystemPackage

// Scenario verbs for devices and the process: mock_domain, replace, pasid_attach,
// pasid_replace, pasid_detach, pasid_check (the kernel selftest's mock domain), rlimit.
extension ScenarioExecutor {
    // MARK: Devices (the kernel selftest's mock domain)

    /// `mock_domain IOAS NAME`: a selftest mock device attached to IOAS; binds NAME (the
    /// device object), NAME.hwpt and NAME.idev.
    func mockDomain(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("mock_domain IOAS NAME") }
        let fd = try session.context(step)
        let pageTable = try session.objectID(step.words[0])
        let answer = if let flags = step.arguments["flags"] {
            try SelftestIOCTL.mockDomainFlags(session.seam, fd, pageTable: pageTable, flags: UInt32(truncatingIfNeeded: try session.number(flags)),
                                              fileID: #fileID, line: step.line)
        } else {
            try SelftestIOCTL.mockDomain(session.seam, fd, pageTable: pageTable, fileID: #fileID, line: step.line)
        }
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

    /// `pasid_attach DEVICE PASID PT` or `pasid_replace DEVICE PASID PT`: the selftest's
    /// `IOMMU_TEST_OP_PASID_ATTACH`/`_REPLACE` on a mock device; outputs `hwpt`, the page
    /// table written back.
    func attachSelftestPASID(_ step: Step, _ session: ScenarioSession, replace: Bool) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("\(step.verb) DEVICE PASID PT") }
        let fd = try session.context(step)
        let hwpt = try SelftestIOCTL.attachPASID(session.seam, fd, device: try session.objectID(step.words[0]),
                                                 pasid: UInt32(truncatingIfNeeded: try session.number(step.words[1])),
                                                 pageTable: try session.objectID(step.words[2]), replace: replace, fileID: #fileID, line: step.line)
        return Outcome(outputs: ["hwpt": "\(hwpt)"])
    }

    /// `pasid_detach DEVICE PASID`: `IOMMU_TEST_OP_PASID_DETACH`.
    func detachSelftestPASID(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("pasid_detach DEVICE PASID") }
        let fd = try session.context(step)
        try SelftestIOCTL.detachPASID(session.seam, fd, device: try session.objectID(step.words[0]),
                                      pasid: UInt32(truncatingIfNeeded: try session.number(step.words[1])), fileID: #fileID, line: step.line)
        return Outcome()
    }

    /// `pasid_check DEVICE PASID HWPT`: `IOMMU_TEST_OP_PASID_CHECK_HWPT` (HWPT 0: attached to
    /// nothing).
    func checkSelftestPASID(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("pasid_check DEVICE PASID HWPT") }
        let fd = try session.context(step)
        try SelftestIOCTL.checkPASID(session.seam, fd, device: try session.objectID(step.words[0]),
                                     pasid: UInt32(truncatingIfNeeded: try session.number(step.words[1])),
                                     hwpt: try session.objectID(step.words[2]), fileID: #fileID, line: step.line)
        return Outcome()
    }

    // MARK: Process limits

    /// `rlimit memlock=SIZE`: lowers the soft `RLIMIT_MEMLOCK` for the rest of the scenario.
    func setMemlock(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let limit = try session.system.memoryLockLimit()
        try session.system.setMemoryLockLimit(ResourceLimit(current: try session.argument(step, "memlock"), maximum: limit.maximum))
        return Outcome()
    }

    /// `hw_info DEVICE [flags=] [type=] [len=] [reserved]`: `IOMMU_GET_HW_INFO` into a buffer
    /// of `len` bytes (default 64) filled with 0xff first. Outputs the type, the length the
    /// kernel wrote back, the capabilities, the PASID width, `word0`/`word1` (the first two
    /// 32-bit words of the data) and `tail` (whether every byte past the kernel's length
    /// was zeroed).
    func hardwareInfo(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("hw_info DEVICE") }
        let fd = try session.context(step)
        let length = Int(try session.argument(step, "len", default: 64))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(length, 8), alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0xff)
        let flags = UInt32(truncatingIfNeeded: try session.argument(step, "flags", default: 0))
        let type = UInt32(truncatingIfNeeded: try session.argument(step, "type", default: 0))
        let answer = try IOMMUFDIOCTL.getHardwareInfo(session.seam, fd, device: try session.objectID(step.words[0]), flags: flags, dataType: type,
                                                      into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<length]), fileID: #fileID, line: step.line)
        let written = min(Int(answer.dataLength), length)
        let tailZeroed = buffer[written..<length].allSatisfy { $0 == 0 }
        return Outcome(outputs: [
            "type": ScenarioSession.hex(UInt64(answer.dataType)), "len": "\(answer.dataLength)",
            "caps": ScenarioSession.hex(answer.capabilities), "pasid": "\(answer.maxPASIDLog2)",
            "word0": ScenarioSession.hex(UInt64(buffer.load(fromByteOffset: 0, as: UInt32.self))),
            "word1": ScenarioSession.hex(UInt64(buffer.load(fromByteOffset: 4, as: UInt32.self))),
            "tail": tailZeroed ? "zeroed" : "kept",
        ])
    }

    /// `vfio_ioas get|set|clear [IOAS]`: `IOMMU_VFIO_IOAS`; outputs `ioas`, the id the kernel
    /// left in the command.
    func vfioIOAS(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("vfio_ioas get|set|clear [IOAS]") }
        let fd = try session.context(step)
        let op: UInt16
        switch step.words[0] {
        case "get": op = UInt16(IOMMU_VFIO_IOAS_GET)
        case "set": op = UInt16(IOMMU_VFIO_IOAS_SET)
        case "clear": op = UInt16(IOMMU_VFIO_IOAS_CLEAR)
        case let other: throw session.fail("vfio_ioas \(other): use get, set or clear")
        }
        let ioas = step.words.count >= 2 ? try session.objectID(step.words[1]) : 0
        let answer = try IOMMUFDIOCTL.vfioIOAS(session.seam, fd, op: op, ioas: ioas, fileID: #fileID, line: step.line)
        return Outcome(outputs: ["ioas": "\(answer)"])
    }

    /// `check_map HWPT BUFFER [offset=] [iova=] [length=]`: `IOMMU_TEST_OP_MD_CHECK_MAP`, whether
    /// the mock domain translates the IOVAs to the buffer's pages.
    func checkMap(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("check_map HWPT BUFFER") }
        let fd = try session.context(step)
        let buffer = try session.buffer(step.words[1])
        let offset = try session.argument(step, "offset", default: 0)
        try SelftestIOCTL.checkMap(session.seam, fd, hwpt: try session.objectID(step.words[0]), iova: try session.argument(step, "iova"),
                                   length: try session.argument(step, "length", default: UInt64(buffer.count) &- offset),
                                   userAddress: UInt64(UInt(bitPattern: buffer.baseAddress)) &+ offset, fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `temp_memory_limit BYTES`: `IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`.
    func temporaryMemoryLimit(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("temp_memory_limit BYTES") }
        let fd = try session.context(step)
        try SelftestIOCTL.setTemporaryMemoryLimit(session.seam, fd, limit: UInt32(truncatingIfNeeded: try session.number(step.words[0])),
                                                  fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `compat version` or `compat extension N`: the type1 container ioctls that `/dev/iommu`
    /// answers itself (`VFIO_GET_API_VERSION`, `VFIO_CHECK_EXTENSION`); outputs `value`.
    func compatibility(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("compat version | compat extension N") }
        let fd = try session.context(step)
        let value: Int32
        switch step.words[0] {
        case "version":
            value = try VFIOContainerIOCTL.getAPIVersion(session.seam, fd, fileID: #fileID, line: step.line)
        case "extension":
            guard step.words.count >= 2 else { throw session.fail("compat extension N") }
            value = try VFIOContainerIOCTL.checkExtension(session.seam, fd, UInt(try session.number(step.words[1])), fileID: #fileID, line: step.line)
        case let other:
            throw session.fail("compat \(other): use version or extension N")
        }
        return Outcome(outputs: ["value": "\(value)"])
    }
}
