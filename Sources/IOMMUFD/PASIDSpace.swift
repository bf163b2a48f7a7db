import Synchronization

/// A process address space ID: which address space a DMA request tagged with it uses,
/// besides its requester ID (RID). Never 0: `IOMMU_NO_PASID` is the RID itself (through
/// VFIO, attaching PASID 0 attaches the whole device).
public struct PASID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The value, at least 1.
    public let rawValue: UInt32

    /// The PASID `rawValue`, or `nil` for 0 (the RID, no PASID).
    public init?(rawValue: UInt32) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }

    /// Orders by value.
    public static func < (lhs: PASID, rhs: PASID) -> Bool { lhs.rawValue < rhs.rawValue }
    /// `pasid N`.
    public var description: String { "pasid \(rawValue)" }
}

/// Where an allocated PASID must be valid.
public enum PASIDScope: Hashable, Sendable {
    /// On one device's RID, which is its IOMMU group's namespace (the kernel keys PASID
    /// attachments by group): other groups may use the same value for something else.
    case device(DeviceID)
    /// On every device registered with the space, including devices registered later: the
    /// property ENQCMD needs (one PASID per process, in an MSR, whatever device it reaches).
    case allRIDs
}

/// Why a ``PASIDSpace`` refused, with what to do about it.
public struct PASIDSpaceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The refusal.
    public enum Reason: Hashable, Sendable {
        /// The device was never registered with this space.
        case deviceNotRegistered(DeviceID)
        /// The device is registered already.
        case alreadyRegistered(DeviceID)
        /// The device takes no PASIDs (its IOMMU reports a PASID width of 0). On a real IOMMU
        /// the kernel would accept a PASID attach for it and do nothing (the core skips
        /// devices with `max_pasids == 0`), so the space refuses instead.
        case noPASIDSupport(DeviceID)
        /// The device's PASID width cannot carry an all-RIDs PASID the space already handed
        /// out, so it cannot join.
        case tooNarrow(DeviceID, width: Int, pasid: PASID)
        /// Every value the scope allows is taken.
        case exhausted(PASIDScope, width: Int)
        /// The preferred value is in use in the scope, or past its width.
        case unavailable(PASID, PASIDScope)
        /// The value is not allocated in that scope.
        case notAllocated(PASID, PASIDScope)
        /// An all-RIDs PASID was asked for with no device registered.
        case noDevices
    }

    /// The refusal.
    public let reason: Reason

    /// The error for `reason`.
    public init(reason: Reason) { self.reason = reason }

    /// What happened, and the fix.
    public var description: String {
        switch reason {
        case .deviceNotRegistered(let device):
            "device \(device.rawValue) is not registered with this PASID space. Fix: register it first (PASIDSpace.register)."
        case .alreadyRegistered(let device):
            "device \(device.rawValue) is registered already."
        case .noPASIDSupport(let device):
            "device \(device.rawValue) takes no PASIDs (its IOMMU reports a PASID width of 0; the kernel would accept an attach and ignore it). "
                + "Fix: use the RID, or a function with a PASID capability behind an IOMMU with PASID support (VT-d scalable mode, SMMUv3 substreams)."
        case .tooNarrow(let device, let width, let pasid):
            "device \(device.rawValue) takes \(width)-bit PASIDs, too narrow for the all-RIDs \(pasid) already handed out. "
                + "Fix: release that PASID first, or keep the device out of this space."
        case .exhausted(let scope, let width):
            "no PASID is free \(Self.words(scope)) (width \(width) bits). Fix: release PASIDs no longer used."
        case .unavailable(let pasid, let scope):
            "\(pasid) is in use \(Self.words(scope)) or past its width. Fix: ask without a preference, or release it first."
        case .notAllocated(let pasid, let scope):
            "\(pasid) is not allocated \(Self.words(scope))."
        case .noDevices:
            "no device is registered, so no PASID can work for all RIDs. Fix: register the devices first."
        }
    }

    private static func words(_ scope: PASIDScope) -> String {
        switch scope {
        case .device(let device): "on device \(device.rawValue)"
        case .allRIDs: "on all registered devices"
        }
    }
}

/// The PASIDs of one iommufd context, allocated by property, as the iommufd design asks:
/// a PASID for one device (``PASIDScope/device(_:)``), valid in that device's IOMMU group
/// like the kernel's own namespace, or one value that works for every registered device
/// (``PASIDScope/allRIDs``): taken from what no group uses, below the narrowest width, and
/// reserved in every group, including groups registered later. Never a process-wide
/// singleton: each context owns its space.
///
/// Values are `[1, 2^w)` for a device of PASID width `w` (``HardwareInfo/maxPASIDLog2``),
/// and at most `INT_MAX` (VFIO's limit). A released value goes to the back of a FIFO and
/// is handed out again only when no value was left unused, oldest first: a late DMA tagged
/// with it finds a PASID nobody attached, not a stranger's table. `preferring:` takes a
/// chosen value when it is free (a VMM mirroring the guest's choice).
public final class PASIDSpace: Sendable {
    /// The iommufd context the devices are bound to.
    public let iommufd: IOMMUFD

    /// A PASID namespace: an IOMMU group, or a device whose group is not known.
    enum Namespace: Hashable {
        case group(Int)
        case device(UInt32)
    }

    struct State {
        /// Each registered device's namespace and PASID width.
        var devices: [UInt32: (namespace: Namespace, width: Int)] = [:]
        /// The values in use per namespace (device-scope ones and every all-RIDs one).
        var used: [Namespace: Set<UInt32>] = [:]
        /// The all-RIDs values handed out.
        var allRIDs: Set<UInt32> = []
        /// Which device each device-scope value was handed to.
        var owners: [Namespace: [UInt32: UInt32]] = [:]
        /// Every value ever handed out in this space (fresh ones come first).
        var everUsed: Set<UInt32> = []
        /// Released values, oldest first.
        var released: [UInt32] = []

        /// The largest value a device of `width` bits takes, plus one.
        static func limit(_ width: Int) -> UInt64 { min(UInt64(1) << UInt64(min(width, 32)), UInt64(Int32.max) + 1) }

        /// The lowest value below `limit` that was never handed out and passes `free`,
        /// else the oldest released one that does.
        func pick(below limit: UInt64, _ free: (UInt32) -> Bool) -> UInt32? {
            // Fresh values first, while any below the limit was never handed out.
            if UInt64(everUsed.count { UInt64($0) < limit }) < limit - 1 {
                var candidate: UInt64 = 1
                while candidate < limit {
                    let value = UInt32(candidate)
                    if !everUsed.contains(value) && free(value) { return value }
                    candidate += 1
                }
            }
            return released.first { UInt64($0) < limit && free($0) }
        }

        mutating func take(_ value: UInt32) {
            everUsed.insert(value)
            if let index = released.firstIndex(of: value) { released.remove(at: index) }
        }
    }

    private let state = Mutex(State())

    /// A space for the devices of `iommufd`.
    public init(iommufd: IOMMUFD) { self.iommufd = iommufd }

    /// Registers `device` with the PASID width its IOMMU reports (`IOMMU_GET_HW_INFO`'s
    /// `out_max_pasid_log2`). `group` is its IOMMU group number, whose devices share one
    /// namespace (`nil`: a namespace of its own). The device takes every all-RIDs PASID
    /// handed out so far.
    ///
    /// - Throws: ``PASIDSpaceError`` (`tooNarrow` names the all-RIDs PASID it cannot carry),
    ///   or the `IOMMUError` of reading the hardware info.
    public func register(_ device: DeviceID, group: Int? = nil, fileID: StaticString = #fileID, line: Int = #line) throws {
        let width = Int(try iommufd.hardwareInfo(of: device, fileID: fileID, line: line).maxPASIDLog2)
        try register(device, pasidWidth: width, group: group)
    }

    /// Registers `device` with a PASID width learned elsewhere.
    ///
    /// - Throws: ``PASIDSpaceError``.
    public func register(_ device: DeviceID, pasidWidth: Int, group: Int? = nil) throws(PASIDSpaceError) {
        try state.withLock { (state) throws(PASIDSpaceError) in
            guard state.devices[device.rawValue] == nil else { throw PASIDSpaceError(reason: .alreadyRegistered(device)) }
            if let widest = state.allRIDs.max(), UInt64(widest) >= State.limit(pasidWidth) {
                throw PASIDSpaceError(reason: .tooNarrow(device, width: pasidWidth, pasid: PASID(rawValue: widest)!))
            }
            let namespace: Namespace = group.map { .group($0) } ?? .device(device.rawValue)
            state.devices[device.rawValue] = (namespace, pasidWidth)
            state.used[namespace, default: []].formUnion(state.allRIDs)
        }
    }

    /// Takes `device` out of the space; the device-scope PASIDs handed to it are released.
    public func unregister(_ device: DeviceID) {
        state.withLock { state in
            guard let (namespace, _) = state.devices.removeValue(forKey: device.rawValue) else { return }
            for (value, owner) in state.owners[namespace] ?? [:] where owner == device.rawValue {
                state.owners[namespace]![value] = nil
                state.used[namespace]!.remove(value)
                state.released.append(value)
            }
            if !state.devices.values.contains(where: { $0.namespace == namespace }) {
                state.used[namespace] = nil
                state.owners[namespace] = nil
            }
        }
    }

    /// Hands out a PASID valid in `scope`: `preferring` when it is free there, else the
    /// lowest value never handed out, else the oldest released one.
    ///
    /// - Throws: ``PASIDSpaceError``: the device is not registered or takes no PASIDs, the
    ///   preferred value is taken, or the scope has no free value left.
    public func allocate(_ scope: PASIDScope, preferring: PASID? = nil) throws(PASIDSpaceError) -> PASID {
        try state.withLock { (state) throws(PASIDSpaceError) -> PASID in
            let limit: UInt64
            let free: (UInt32) -> Bool
            switch scope {
            case .device(let device):
                guard let (namespace, width) = state.devices[device.rawValue] else { throw PASIDSpaceError(reason: .deviceNotRegistered(device)) }
                guard width > 0 else { throw PASIDSpaceError(reason: .noPASIDSupport(device)) }
                limit = State.limit(width)
                let used = state.used[namespace] ?? []
                free = { !used.contains($0) }
            case .allRIDs:
                guard let narrowest = state.devices.min(by: { $0.value.width < $1.value.width }) else { throw PASIDSpaceError(reason: .noDevices) }
                guard narrowest.value.width > 0 else { throw PASIDSpaceError(reason: .noPASIDSupport(DeviceID(rawValue: narrowest.key))) }
                limit = State.limit(narrowest.value.width)
                let used = state.used
                free = { value in !used.values.contains { $0.contains(value) } }
            }
            let value: UInt32
            if let preferring {
                guard UInt64(preferring.rawValue) < limit, free(preferring.rawValue) else { throw PASIDSpaceError(reason: .unavailable(preferring, scope)) }
                value = preferring.rawValue
            } else {
                let width = 63 - limit.leadingZeroBitCount
                guard let picked = state.pick(below: limit, free) else { throw PASIDSpaceError(reason: .exhausted(scope, width: width)) }
                value = picked
            }
            state.take(value)
            switch scope {
            case .device(let device):
                let namespace = state.devices[device.rawValue]!.namespace
                state.used[namespace, default: []].insert(value)
                state.owners[namespace, default: [:]][value] = device.rawValue
            case .allRIDs:
                state.allRIDs.insert(value)
                for namespace in Set(state.devices.values.map(\.namespace)) { state.used[namespace, default: []].insert(value) }
            }
            return PASID(rawValue: value)!
        }
    }

    /// Gives `pasid` back to `scope`; it joins the end of the reuse FIFO.
    ///
    /// - Throws: ``PASIDSpaceError/Reason/notAllocated(_:_:)`` when it was not handed out there.
    public func release(_ pasid: PASID, _ scope: PASIDScope) throws(PASIDSpaceError) {
        try state.withLock { (state) throws(PASIDSpaceError) in
            let value = pasid.rawValue
            switch scope {
            case .device(let device):
                guard let (namespace, _) = state.devices[device.rawValue], state.owners[namespace]?[value] == device.rawValue else {
                    throw PASIDSpaceError(reason: .notAllocated(pasid, scope))
                }
                state.owners[namespace]![value] = nil
                state.used[namespace]!.remove(value)
            case .allRIDs:
                guard state.allRIDs.remove(value) != nil else { throw PASIDSpaceError(reason: .notAllocated(pasid, scope)) }
                for namespace in state.used.keys { state.used[namespace]!.remove(value) }
            }
            state.released.append(value)
        }
    }

    /// The PASID width of a registered device, or `nil`.
    public func pasidWidth(of device: DeviceID) -> Int? {
        state.withLock { $0.devices[device.rawValue]?.width }
    }
}
