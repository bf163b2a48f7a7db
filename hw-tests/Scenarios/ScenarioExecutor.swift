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
            // The VM lane's functions, at the VM's addresses, for the VFIO verbs.
            configuration.addPCIDevice(.edu())
            configuration.addPCIDevice(.e1000e())
            configuration.addPCIDevice(.nvme())
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
        var processes: [String: ScenarioProcess] = [:]
        defer {
            for process in processes.values { process.end() }
            session.tearDown()
            if let originalLimit { try? system.setMemoryLockLimit(originalLimit) }
        }
        var outcomes: [Outcome] = []
        for (index, step) in scenario.steps.enumerated() {
            session.line = step.line
            do {
                if let name = step.arguments["process"] {
                    // A step of another process (`process=NAME`), started at its first step.
                    var own = step
                    own.arguments["process"] = nil
                    let perform = { (step: Step, session: ScenarioSession) throws -> Outcome in try self.perform(step, in: session) }
                    if processes[name] == nil {
                        do {
                            processes[name] = try ScenarioProcess(beside: session, scenario: scenario, perform: perform)
                        } catch let error as ScriptError {
                            throw error
                        } catch {
                            throw ScriptError(line: step.line, message: "could not start process \(name): \(error)")
                        }
                    }
                    outcomes.append(try processes[name]!.perform(own, index: index, perform: perform))
                    continue
                }
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
        case "view": return try mapMemoryFile(step, session)
        case "poke": return try poke(step, session)
        case "peek": return try peek(step, session)
        case "same": return try sameAddress(step, session)
        case "map": return try map(step, session)
        case "mapfile": return try mapFile(step, session)
        case "copy": return try copy(step, session)
        case "unmap": return try unmap(step, session)
        case "ranges": return try iovaRanges(step, session)
        case "allow": return try allowIOVAs(step, session)
        case "reserve": return try addReserved(step, session)
        case "option": return try option(step, session)
        case "mock_domain": return try mockDomain(step, session)
        case "hwpt": return try allocateHWPT(step, session)
        case "dirty_track": return try setDirtyTracking(step, session)
        case "dirty_read": return try readDirtyBitmap(step, session)
        case "dirty_mark": return try markDirty(step, session)
        case "invalidate": return try invalidate(step, session)
        case "check_iotlb": return try checkIOTLB(step, session)
        case "viommu": return try allocateVIOMMU(step, session)
        case "replace": return try replace(step, session)
        case "dmabuf": return try exportDMABuf(step, session)
        case "change_process": return try changeProcess(step, session)
        case "vdevice": return try allocateVDevice(step, session)
        case "veventq": return try allocateVEventQueue(step, session)
        case "hw_queue": return try allocateHWQueue(step, session)
        case "fault": return try allocateFaultQueue(step, session)
        case "trigger_vevent": return try triggerVEvent(step, session)
        case "trigger_iopf": return try triggerIOPF(step, session)
        case "check_cache": return try checkDeviceCache(step, session)
        case "qread": return try readEventQueue(step, session)
        case "qwrite": return try writeEventQueue(step, session)
        case "qpoll": return try pollEventQueue(step, session)
        case "qpread": return try preadEventQueue(step, session)
        case "pasid_attach": return try attachSelftestPASID(step, session, replace: false)
        case "pasid_replace": return try attachSelftestPASID(step, session, replace: true)
        case "pasid_detach": return try detachSelftestPASID(step, session)
        case "pasid_check": return try checkSelftestPASID(step, session)
        case "rlimit": return try setMemlock(step, session)
        case "raw": return try raw(step, session)
        case "payload": return try payload(step, session)
        case "hw_info": return try hardwareInfo(step, session)
        case "vfio_ioas": return try vfioIOAS(step, session)
        case "check_map": return try checkMap(step, session)
        case "compat": return try compatibility(step, session)
        case "cdev": return try openCdev(step, session)
        case "bind": return try bindDevice(step, session)
        case "attach": return try attachDevice(step, session)
        case "detach": return try detachDevice(step, session)
        case "region": return try regionInfo(step, session)
        case "bar_map": return try mapBAR(step, session)
        case "bar_unmap": return try unmapBAR(step, session)
        case "irq": return try interruptInfo(step, session)
        case "reset": return try resetDevice(step, session)
        case "close_device": return try closeDevice(step, session)
        case "container": return try openContainer(step, session)
        case "group": return try openGroup(step, session)
        case "group_status": return try groupStatus(step, session)
        case "set_container": return try setContainer(step, session)
        case "unset_container": return try unsetContainer(step, session)
        case "set_iommu": return try setIOMMU(step, session)
        case "extension": return try checkExtension(step, session)
        case "group_device": return try groupDevice(step, session)
        case "dma_map": return try mapDMA(step, session)
        case "dma_unmap": return try unmapDMA(step, session)
        case "config": return try readConfiguration(step, session)
        case "region_write": return try writeRegion(step, session)
        case "eventfd": return try makeEventfd(step, session)
        case "irq_set": return try setInterrupts(step, session)
        case "eventfd_read": return try readEventfd(step, session)
        case "temp_memory_limit": return try temporaryMemoryLimit(step, session)
        case "kernel": return try setKernelKnobs(step, session)
        default: throw session.fail("unknown step `\(step.verb)`")
        }
    }

    // MARK: Contexts and objects

    func open(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("open NAME") }
        session.contexts[name] = try session.system.open(devicePath, flags: O_RDWR, mode: 0)
        return Outcome()
    }

    /// `close [NAME]`: closes a named descriptor: a context (the default one without a
    /// name), a group, a container, a memfd or an eventfd.
    func closeContext(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let name = step.words.first ?? ScenarioSession.defaultContext
        let fd: Int32
        if let context = session.contexts.removeValue(forKey: name) {
            fd = context
        } else if let group = session.groups.removeValue(forKey: name) {
            fd = group.fd
        } else if let container = session.containers.removeValue(forKey: name) {
            fd = container
        } else if let file = session.memoryFiles.removeValue(forKey: name) {
            fd = file
        } else if let eventfd = session.eventfds.removeValue(forKey: name) {
            fd = eventfd
        } else if let queue = session.eventQueues.removeValue(forKey: name) {
            fd = queue
        } else {
            throw session.fail("no context, group, container, memfd, eventfd or event queue named \(name)")
        }
        try session.system.close(fd)
        return Outcome()
    }

    func allocateIOAS(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("ioas NAME") }
        let fd = try session.context(step)
        let id = try IOMMUFDIOCTL.ioasAlloc(session.seam, fd, fileID: #fileID, line: step.line)
        session.bind(name, id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }

    func destroy(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let word = step.words.first else { throw session.fail("destroy NAME|ID") }
        let fd = try session.context(step)
        try IOMMUFDIOCTL.destroy(session.seam, fd, id: try session.objectID(word), fileID: #fileID, line: step.line)
        return Outcome()
    }
}
