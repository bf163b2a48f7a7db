import CIOMMUFD
import IOMMUFD
import SystemPackage

/// A mistake in a scenario itself (an unknown name, a missing argument): not a result
/// of the system under test, so it fails the scenario on every backend.
public struct ScriptError: Error, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// The objects a running scenario has created on one backend: iommufd descriptors
/// (contexts), object ids by name, user buffers and memfds. Everything it took is
/// given back by `tearDown`, so scenarios cannot affect each other on a real kernel.
final class ScenarioSession {
    let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    let seam: IOCTLSeam
    let devicePath: String
    var contexts: [String: Int32] = [:]
    var objectIDs: [String: UInt32] = [:]
    var objectContexts: [String: String] = [:]
    /// Buffers by name, as allocated (a released part keeps its address).
    var buffers: [String: UnsafeMutableRawBufferPointer] = [:]
    /// The address ranges still mapped, `(start, length)`, for teardown.
    var liveMappings: [(start: Int, length: Int)] = []
    var memoryFiles: [String: Int32] = [:]
    /// VFIO device descriptors by name (`cdev`, `group_device`).
    var devices: [String: Int32] = [:]
    /// Legacy VFIO group descriptors by name, with the group number.
    var groups: [String: (fd: Int32, number: UInt32)] = [:]
    /// Legacy VFIO containers by name.
    var containers: [String: Int32] = [:]
    /// Eventfds by name (`eventfd`), for interrupt triggers.
    var eventfds: [String: Int32] = [:]
    /// Event queue descriptors (vEVENTQs and fault queues) by name.
    var eventQueues: [String: Int32] = [:]
    /// Kernel parameters a `kernel` step changed, with the values to put back.
    var restoredParameters: [String: [UInt8]] = [:]
    var line = 0

    static let defaultContext = "fd"

    init(system: any SystemInterface, devicePath: String) {
        self.system = system
        seam = IOCTLSeam(system)
        self.devicePath = devicePath
    }

    func tearDown() {
        for (path, bytes) in restoredParameters { try? system.writeFile(path, bytes) }
        restoredParameters = [:]
        for fd in devices.values { try? system.close(fd) }
        devices = [:]
        for group in groups.values { try? system.close(group.fd) }
        groups = [:]
        for fd in containers.values { try? system.close(fd) }
        containers = [:]
        for fd in eventfds.values { try? system.close(fd) }
        eventfds = [:]
        for fd in eventQueues.values { try? system.close(fd) }
        eventQueues = [:]
        for fd in contexts.values { try? system.close(fd) }
        for fd in memoryFiles.values { try? system.close(fd) }
        for mapping in liveMappings {
            try? system.munmap(UnsafeMutableRawPointer(bitPattern: mapping.start)!, length: mapping.length)
        }
        liveMappings = []
        contexts = [:]
        memoryFiles = [:]
        buffers = [:]
    }

    /// Removes `[start, start+length)` from the live mappings.
    func forgetMapping(start: Int, length: Int) {
        let end = start + length
        liveMappings = liveMappings.flatMap { mapping -> [(start: Int, length: Int)] in
            let mappingEnd = mapping.start + mapping.length
            guard start < mappingEnd && end > mapping.start else { return [mapping] }
            var pieces: [(start: Int, length: Int)] = []
            if mapping.start < start { pieces.append((mapping.start, start - mapping.start)) }
            if end < mappingEnd { pieces.append((end, mappingEnd - end)) }
            return pieces
        }
    }

    // MARK: Names and numbers

    func fail(_ message: String) -> ScriptError { ScriptError(line: line, message: message) }

    /// The iommufd descriptor of `in=NAME`, opening the default one on first use.
    func context(_ step: Step) throws -> Int32 {
        let name = step.arguments["in"] ?? Self.defaultContext
        if let fd = contexts[name] { return fd }
        guard name == Self.defaultContext else { throw fail("no context \(name) (use `open \(name)`)") }
        let fd = try system.open(devicePath, flags: O_RDWR, mode: 0)
        contexts[name] = fd
        return fd
    }

    /// Any named descriptor: a device, a group, a container or a context.
    func descriptor(named name: String) throws -> Int32 {
        if let fd = devices[name] ?? groups[name]?.fd ?? containers[name] ?? contexts[name] { return fd }
        throw fail("no device, group, container or context named \(name)")
    }

    /// An object id: a name bound by an earlier step, `name.field`, or a number.
    func objectID(_ word: String) throws -> UInt32 {
        if let id = objectIDs[word] { return id }
        if let value = try? number(word), value <= UInt64(UInt32.max) { return UInt32(value) }
        throw fail("no object named \(word)")
    }

    /// The payload a step's `data=NAME` names, cut to its `data_len=` (default: all of it),
    /// or `nil` without `data=`.
    func dataPayload(_ step: Step) throws -> UnsafeMutableRawBufferPointer? {
        guard let name = step.arguments["data"] else { return nil }
        let payload = try buffer(name)
        let length = Int(try argument(step, "data_len", default: UInt64(payload.count)))
        guard length <= payload.count else { throw fail("data_len past the payload \(name)") }
        return UnsafeMutableRawBufferPointer(rebasing: payload[..<length])
    }

    func buffer(_ name: String) throws -> UnsafeMutableRawBufferPointer {
        guard let buffer = buffers[name] else { throw fail("no buffer named \(name)") }
        return buffer
    }

    func group(_ name: String) throws -> (fd: Int32, number: UInt32) {
        guard let group = groups[name] else { throw fail("no group named \(name) (use `group \(name) NUMBER`)") }
        return group
    }

    func container(_ name: String) throws -> Int32 {
        guard let fd = containers[name] else { throw fail("no container named \(name) (use `container \(name)`)") }
        return fd
    }

    func device(_ name: String) throws -> Int32 {
        guard let fd = devices[name] else { throw fail("no device named \(name) (use `cdev \(name) BDF`)") }
        return fd
    }

    func memoryFile(_ name: String) throws -> Int32 {
        guard let fd = memoryFiles[name] else { throw fail("no memfd named \(name)") }
        return fd
    }

    func argument(_ step: Step, _ key: String) throws -> UInt64 {
        guard let text = step.arguments[key] else { throw fail("`\(step.verb)` needs \(key)=") }
        return try number(text)
    }

    func argument(_ step: Step, _ key: String, default value: UInt64) throws -> UInt64 {
        guard let text = step.arguments[key] else { return value }
        return try number(text)
    }

    /// `0x1000`, `4096`, `16K`, `2M`, `1G`, `PAGE`, `MAX` (2^64-1), a buffer name (its
    /// address) or an object name (its id), joined by `+` and `-` (wrapping, so
    /// `MAX-4095` and `B+4K` work).
    func number(_ text: String) throws -> UInt64 {
        var total: UInt64 = 0
        var sign: UInt8 = UInt8(ascii: "+")
        var term = ""
        func addTerm() throws {
            guard !term.isEmpty else { throw fail("bad number \(text)") }
            let value = try self.term(term)
            total = sign == UInt8(ascii: "+") ? total &+ value : total &- value
            term = ""
        }
        for character in text {
            if (character == "+" || character == "-") && !term.isEmpty {
                try addTerm()
                sign = character.asciiValue!
            } else {
                term.append(character)
            }
        }
        try addTerm()
        return total
    }

    private func term(_ text: String) throws -> UInt64 {
        if let value = Self.literal(text) { return value }
        if let buffer = buffers[text] { return UInt64(UInt(bitPattern: buffer.baseAddress)) }
        if let id = objectIDs[text] { return UInt64(id) }
        throw fail("bad number or unknown name \(text)")
    }

    static func literal(_ text: String) -> UInt64? {
        switch text {
        case "PAGE": return 4096
        case "MAX": return .max
        default: break
        }
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        switch digits.last {
        case "K": multiplier = 1 << 10
        case "M": multiplier = 1 << 20
        case "G": multiplier = 1 << 30
        case "T": multiplier = 1 << 40
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        let value: UInt64?
        if digits.hasPrefix("0x") { value = UInt64(digits.dropFirst(2), radix: 16) } else { value = UInt64(digits) }
        guard let value else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    // MARK: Calling the kernel

    /// `IOMMU_IOAS_MAP`-style access flags from `access=rw|r|w|none`.
    func accessFlags(_ step: Step) throws -> UInt32 {
        switch step.arguments["access"] ?? "rw" {
        case "rw": return IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE
        case "r": return IOMMU_IOAS_MAP_READABLE
        case "w": return IOMMU_IOAS_MAP_WRITEABLE
        case "none": return 0
        case let other: throw fail("access=\(other): use rw, r, w or none")
        }
    }

    /// The flags of a map-like call: access, `fixed`, and `flags=` for raw extra bits.
    func mapFlags(_ step: Step) throws -> UInt32 {
        var flags = try accessFlags(step)
        if step.has("fixed") { flags |= IOMMU_IOAS_MAP_FIXED_IOVA }
        if let extra = step.arguments["flags"] { flags |= UInt32(truncatingIfNeeded: try number(extra)) }
        return flags
    }

    func bind(_ name: String, id: UInt32, context: String) {
        objectIDs[name] = id
        objectContexts[name] = context
    }
}
