import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

/// Runs scenarios against one backend: any `SystemInterface`, so the same code drives
/// MockKernel and, through `LinuxSystem`, a real kernel's `/dev/iommu`.
public struct ScenarioExecutor: Sendable {
    let makeSystem: @Sendable () -> any SystemInterface
    let devicePath: String
    /// `RLIMIT_MEMLOCK` (soft) every scenario starts from, so accounting results do not
    /// depend on the machine.
    public static let baselineMemlock: UInt64 = 8 << 20

    /// - Parameter makeSystem: the backend for one scenario; called once per scenario
    ///   (a fresh MockKernel each time, or the one `LinuxSystem`).
    public init(devicePath: String = "/dev/iommu", makeSystem: @escaping @Sendable () -> any SystemInterface) {
        self.devicePath = devicePath
        self.makeSystem = makeSystem
    }

    /// MockKernel as the scenarios expect it: an unprivileged process whose soft
    /// `RLIMIT_MEMLOCK` starts at the baseline and whose hard limit is `hardLimit`
    /// (pass the real process's, so both backends can raise and lower alike).
    public static func mock(hardLimit: UInt64? = baselineMemlock, devicePath: String = "/dev/iommu") -> ScenarioExecutor {
        ScenarioExecutor(devicePath: devicePath) {
            var configuration = MockKernel.Configuration()
            configuration.memlockMaximum = hardLimit
            configuration.memlockLimit = min(baselineMemlock, hardLimit ?? .max)
            return MockKernel(configuration: configuration)
        }
    }

    /// The outcome of every step, in order; stops at a mistake in the scenario itself.
    public func run(_ scenario: Scenario) throws(ScriptError) -> [Outcome] {
        let system = makeSystem()
        let originalLimit = try? system.memoryLockLimit()
        if let originalLimit {
            try? system.setMemoryLockLimit(ResourceLimit(current: min(Self.baselineMemlock, originalLimit.maximum ?? .max), maximum: originalLimit.maximum))
        }
        let session = ScenarioSession(system: system, devicePath: devicePath)
        defer {
            session.tearDown()
            if let originalLimit { try? system.setMemoryLockLimit(originalLimit) }
        }
        var outcomes: [Outcome] = []
        for step in scenario.steps {
            session.line = step.line
            do {
                outcomes.append(try perform(step, in: session))
            } catch let error as ScriptError {
                throw error
            } catch let errno as Errno {
                outcomes.append(Outcome(errno: errno))
            } catch let error as IOMMUError {
                outcomes.append(Outcome(errno: error.errno))
            } catch {
                throw ScriptError(line: step.line, message: "\(error)")
            }
        }
        return outcomes
    }

    func perform(_ step: Step, in session: ScenarioSession) throws -> Outcome {
        switch step.verb {
        case "open": return try open(step, session)
        case "close": return try closeContext(step, session)
        case "ioas": return try allocateIOAS(step, session)
        case "destroy": return try destroy(step, session)
        case "buffer": return try allocateBuffer(step, session)
        case "release": return try releaseBuffer(step, session)
        case "memfd": return try createMemoryFile(step, session)
        case "truncate": return try truncate(step, session)
        case "map": return try map(step, session)
        case "mapfile": return try mapFile(step, session)
        case "copy": return try copy(step, session)
        case "unmap": return try unmap(step, session)
        case "ranges": return try iovaRanges(step, session)
        case "allow": return try allowIOVAs(step, session)
        case "reserve": return try addReserved(step, session)
        case "option": return try option(step, session)
        case "mock_domain": return try mockDomain(step, session)
        case "replace": return try replace(step, session)
        case "rlimit": return try setMemlock(step, session)
        case "raw": return try raw(step, session)
        default: throw session.fail("unknown step `\(step.verb)`")
        }
    }

    // MARK: Contexts and objects

    func open(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("open NAME") }
        session.contexts[name] = try session.system.open(devicePath, flags: O_RDWR, mode: 0)
        return Outcome()
    }

    func closeContext(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let name = step.words.first ?? ScenarioSession.defaultContext
        guard let fd = session.contexts.removeValue(forKey: name) else { throw session.fail("no context \(name)") }
        try session.system.close(fd)
        return Outcome()
    }

    func allocateIOAS(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("ioas NAME") }
        let fd = try session.context(step)
        let id = try IOMMUFDIOCTL.ioasAlloc(session.system, fd, fileID: #fileID, line: step.line)
        session.bind(name, id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }

    func destroy(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let word = step.words.first else { throw session.fail("destroy NAME|ID") }
        let fd = try session.context(step)
        try IOMMUFDIOCTL.destroy(session.system, fd, id: try session.objectID(word), fileID: #fileID, line: step.line)
        return Outcome()
    }

    // MARK: Memory

    /// `buffer NAME SIZE [readonly]`: anonymous memory, 2 MiB aligned so automatic IOVAs
    /// (which follow the user address's alignment) are the same on every backend.
    func allocateBuffer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("buffer NAME SIZE") }
        let size = Int(try session.number(step.words[1]))
        let alignment = 2 << 20
        let protection = step.has("readonly") ? PROT_READ : PROT_READ | PROT_WRITE
        let reservation = size + alignment
        let base = try session.system.mmap(address: nil, length: reservation, protection: protection,
                                           flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        let start = (Int(bitPattern: base) + alignment - 1) & ~(alignment - 1)
        let head = start - Int(bitPattern: base)
        if head > 0 { try session.system.munmap(base, length: head) }
        let tail = reservation - head - size
        if tail > 0 { try session.system.munmap(UnsafeMutableRawPointer(bitPattern: start + size)!, length: tail) }
        let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: start), count: size)
        if !step.has("readonly") && !step.has("untouched") {
            // Fault the pages in, as a driver's buffer would be.
            for offset in stride(from: 0, to: size, by: 4096) { buffer[offset] = UInt8(truncatingIfNeeded: offset >> 12) }
        }
        session.buffers[step.words[0]] = buffer
        session.liveMappings.append((start, size))
        return Outcome()
    }

    /// `release NAME [offset=] [length=]`: munmap all or part of a buffer. The name
    /// keeps its address, so later steps can point into the hole.
    func releaseBuffer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("release NAME") }
        let buffer = try session.buffer(name)
        let offset = Int(try session.argument(step, "offset", default: 0))
        let length = Int(try session.argument(step, "length", default: UInt64(buffer.count - offset)))
        guard offset + length <= buffer.count, offset % 4096 == 0, length % 4096 == 0, length > 0 else {
            throw session.fail("release outside \(name)")
        }
        let start = Int(bitPattern: buffer.baseAddress!) + offset
        try session.system.munmap(buffer.baseAddress! + offset, length: length)
        session.forgetMapping(start: start, length: length)
        return Outcome()
    }

    /// `memfd NAME SIZE`: a memfd of that size (for `mapfile`).
    func createMemoryFile(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("memfd NAME SIZE") }
        let fd = try session.system.memfdCreate("scenario-" + step.words[0], flags: 0)
        session.memoryFiles[step.words[0]] = fd
        try session.system.ftruncate(fd, length: Int64(try session.number(step.words[1])))
        return Outcome()
    }

    /// `truncate NAME SIZE`: change a memfd's size.
    func truncate(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("truncate NAME SIZE") }
        try session.system.ftruncate(try session.memoryFile(step.words[0]), length: Int64(try session.number(step.words[1])))
        return Outcome()
    }

    // MARK: Mapping

    /// `map IOAS BUFFER [offset=] [length=] [iova=] [fixed] [access=] [user=] [flags=]`
    func map(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("map IOAS BUFFER") }
        let fd = try session.context(step)
        let userAddress: UInt64, length: UInt64
        if let user = step.arguments["user"] {
            userAddress = try session.number(user)
            length = try session.argument(step, "length")
        } else {
            let buffer = try session.buffer(step.words[1])
            let offset = try session.argument(step, "offset", default: 0)
            userAddress = UInt64(UInt(bitPattern: buffer.baseAddress)) + offset
            length = try session.argument(step, "length", default: UInt64(buffer.count) &- offset)
        }
        let iova = try IOMMUFDIOCTL.ioasMap(session.system, fd, ioas: try session.objectID(step.words[0]), flags: try session.mapFlags(step),
                                            userAddress: userAddress, length: length, iova: try session.argument(step, "iova", default: 0),
                                            fileID: #fileID, line: step.line)
        return Outcome(outputs: ["iova": ScenarioSession.hex(iova)])
    }

    /// `mapfile IOAS MEMFD [start=] [length=] [iova=] [fixed] [access=] [fd=] [flags=]`
    func mapFile(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("mapfile IOAS MEMFD") }
        let fd = try session.context(step)
        let file: Int32
        if let raw = step.arguments["fd"] {
            file = Int32(truncatingIfNeeded: Int64(bitPattern: try session.number(raw)))
        } else {
            file = try session.memoryFile(step.words[1])
        }
        let iova = try IOMMUFDIOCTL.ioasMapFile(session.system, fd, ioas: try session.objectID(step.words[0]), flags: try session.mapFlags(step),
                                                fileDescriptor: file, start: try session.argument(step, "start", default: 0),
                                                length: try session.argument(step, "length"), iova: try session.argument(step, "iova", default: 0),
                                                fileID: #fileID, line: step.line)
        return Outcome(outputs: ["iova": ScenarioSession.hex(iova)])
    }

    /// `copy DST SRC src=IOVA length= [iova=] [fixed] [access=] [flags=]`
    func copy(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("copy DST SRC") }
        let fd = try session.context(step)
        let iova = try IOMMUFDIOCTL.ioasCopy(session.system, fd, destination: try session.objectID(step.words[0]),
                                             source: try session.objectID(step.words[1]), flags: try session.mapFlags(step),
                                             length: try session.argument(step, "length"), destinationIOVA: try session.argument(step, "iova", default: 0),
                                             sourceIOVA: try session.argument(step, "src"), fileID: #fileID, line: step.line)
        return Outcome(outputs: ["iova": ScenarioSession.hex(iova)])
    }

    /// `unmap IOAS iova= length=`; the output is the number of bytes unmapped.
    func unmap(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let ioas = step.words.first else { throw session.fail("unmap IOAS") }
        let fd = try session.context(step)
        let unmapped = try IOMMUFDIOCTL.ioasUnmap(session.system, fd, ioas: try session.objectID(ioas), iova: try session.argument(step, "iova"),
                                                  length: try session.argument(step, "length"), fileID: #fileID, line: step.line)
        return Outcome(outputs: ["length": ScenarioSession.hex(unmapped)])
    }

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
                try IOMMUFDIOCTL.ioasIOVARanges(session.system, fd, ioas: id, into: UnsafeMutableBufferPointer(rebasing: entries[0..<capacity]),
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
                try IOMMUFDIOCTL.ioasAllowIOVAs(session.system, fd, ioas: id, ranges: entries, fileID: #fileID, line: step.line)
            }
        }
        if case .failure(let error) = outcome { return Outcome(errno: error.errno) }
        return Outcome()
    }

    /// `reserve IOAS start= length=` (selftest `IOMMU_TEST_OP_ADD_RESERVED`).
    func addReserved(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let ioas = step.words.first else { throw session.fail("reserve IOAS start= length=") }
        let fd = try session.context(step)
        try SelftestIOCTL.addReserved(session.system, fd, ioas: try session.objectID(ioas), start: try session.argument(step, "start"),
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
            _ = try IOMMUFDIOCTL.option(session.system, fd, option: option, op: IOMMU_OPTION_OP_SET, object: object,
                                        value: try session.number(value), fileID: #fileID, line: step.line)
            return Outcome()
        }
        guard step.has("get") else { throw session.fail("option needs get or set=N") }
        let value = try IOMMUFDIOCTL.option(session.system, fd, option: option, op: IOMMU_OPTION_OP_GET, object: object, value: 0,
                                            fileID: #fileID, line: step.line)
        return Outcome(outputs: ["value": "\(value)"])
    }

    // MARK: Devices (the kernel selftest's mock domain)

    /// `mock_domain IOAS NAME`: a selftest mock device attached to IOAS; binds NAME (the
    /// device object), NAME.hwpt and NAME.idev.
    func mockDomain(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("mock_domain IOAS NAME") }
        let fd = try session.context(step)
        let answer = try SelftestIOCTL.mockDomain(session.system, fd, pageTable: try session.objectID(step.words[0]), fileID: #fileID, line: step.line)
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
        let hwpt = try SelftestIOCTL.mockDomainReplace(session.system, fd, device: try session.objectID(step.words[0]),
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

    // MARK: Raw ABI

    /// `raw NR size=N [bytes=M] [null] [tail=V] [u32.OFFSET=V] [u64.OFFSET=V]`: command NR
    /// with a zeroed argument of M bytes (default: size) whose `size` field says N.
    func raw(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let word = step.words.first else { throw session.fail("raw NR size=N") }
        let fd = try session.context(step)
        let number = try session.number(word)
        let request = UInt(IOMMUFD_TYPE_SHIFTED) | UInt(number & 0xff)
        let declared = try session.argument(step, "size")
        let byteCount = Int(try session.argument(step, "bytes", default: max(declared, 4)))
        var bytes = [UInt8](repeating: 0, count: max(byteCount, 4) + 8)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: declared).littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
        if let tail = step.arguments["tail"], declared > 0 {
            bytes[Int(declared) - 1] = UInt8(truncatingIfNeeded: try session.number(tail))
        }
        for (key, value) in step.arguments where key.hasPrefix("u32.") || key.hasPrefix("u64.") {
            guard let offset = Int(key.dropFirst(4)) else { throw session.fail("bad field \(key)") }
            let wide = key.hasPrefix("u64.")
            let parsed = try session.number(value)
            if wide {
                withUnsafeBytes(of: parsed.littleEndian) { bytes.replaceSubrange(offset..<offset + 8, with: $0) }
            } else {
                withUnsafeBytes(of: UInt32(truncatingIfNeeded: parsed).littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) }
            }
        }
        if step.has("null") {
            _ = try IOMMUFDIOCTL.raw(session.system, fd, request: request, argument: nil)
            return Outcome()
        }
        var errno: Errno?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(Errno) { _ = try IOMMUFDIOCTL.raw(session.system, fd, request: request, argument: buffer.baseAddress) } catch { errno = error }
        }
        return Outcome(errno: errno)
    }
}

/// `_IO(';', 0)`: the iommufd ioctl type byte in place.
let IOMMUFD_TYPE_SHIFTED: UInt32 = 0x3b << 8
