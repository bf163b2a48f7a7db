import CIOMMUFD
import Glibc
import SystemPackage
@_spi(Selftest) import IOMMUFD

/// The objects on a vIOMMU through the typed API on the selftest mock IOMMU, in the steps of
/// the kernel's `iommufd_viommu` tests (vdevice_alloc, vdevice_cache, hw_queue): a vDEVICE
/// that lets the device attach through the vIOMMU, a vEVENTQ read as typed events with its
/// overflow, invalidation that clears the device's caches, and a HW queue that pins its
/// memory. The same function runs on the kernel (the VM lane) and on MockKernel.
public enum VIOMMUObjectsProbe {
    /// What Linux 7.3 answered in the VM lane.
    public static let linuxAnswer = [
        "attach through the vIOMMU without a vDEVICE: ENOENT",
        "vDEVICE 0x99, then the attach: ok",
        "a second vDEVICE for the device: EEXIST",
        "events before a queue: EOPNOTSUPP",
        "three events into a queue of 2: event 0x99 #0, event 0x99 #1, lost #2",
        "one more: event 0x99 #3",
        "caches cleared through the vDEVICE: 0x0 0x0 0xbaddad 0xbaddad",
        "a HW queue on a mapped page: ok",
        "unmap its page: EBUSY",
        "the vIOMMU while things are on it: EBUSY",
        "queue, events, vDEVICE, nested, vIOMMU, parent go: ok",
        "unmap its page then: ok",
    ]

    /// The lines through `system` (a kernel with the selftest, or MockKernel).
    public static func lines(system: any SystemInterface) throws -> [String] {
        try ProbeOutcome.withSelftestDevice(system: system) { iommufd, ioas, device in
            try ProbeOutcome.withMemory(system: system, length: Int(page), shared: true) { memory in try lines(iommufd, ioas, device, memory) }
        }
    }

    static let page: UInt64 = 4096  // the VM lane's x86 page size

    static func lines(_ iommufd: IOMMUFD, _ ioas: IOAS, _ device: SelftestMockDevice, _ memory: UnsafeMutableRawPointer) throws -> [String] {
        var lines: [String] = []
        let outcome = ProbeOutcome.of

        var parent: HWPT? = try ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent])
        var viommu: VIOMMU? = try parent!.allocateVIOMMU(for: device.deviceID, type: .selftest)
        var nested: NestedHWPT? = try viommu!.allocateNested(for: device.deviceID, data: SelftestNestedTable())
        lines.append("attach through the vIOMMU without a vDEVICE: " + outcome { () throws(IOMMUError) in
            try iommufd.selftestReplace(device.selftestID, with: nested!.id.rawValue)
        })
        var vdevice: VDevice?
        lines.append("vDEVICE 0x99, then the attach: " + outcome { () throws(IOMMUError) in
            vdevice = try viommu!.allocateVDevice(for: device.deviceID, virtualID: 0x99)
            try iommufd.selftestReplace(device.selftestID, with: nested!.id.rawValue)
        })
        lines.append("a second vDEVICE for the device: " + outcome { () throws(IOMMUError) in
            _ = try viommu!.allocateVDevice(for: device.deviceID, virtualID: 0x55)
        })
        lines.append("events before a queue: " + outcome { () throws(IOMMUError) in try iommufd.selftestTriggerVEvent(device) })
        var events: VEventQueue? = try viommu!.allocateEventQueue(type: .selftest, depth: 2)
        func describe(_ records: [VEvent]) -> String {
            records.map { record in
                switch record {
                case .event(let sequence, let data):
                    let virtualID = data.count >= 4 ? data.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0
                    return "event 0x\(String(virtualID, radix: 16)) #\(sequence)"
                case .lost(let sequence):
                    return "lost #\(sequence)"
                }
            }.joined(separator: ", ")
        }
        for _ in 0..<3 { try iommufd.selftestTriggerVEvent(device) }
        lines.append("three events into a queue of 2: " + describe(try events!.read()))
        try iommufd.selftestTriggerVEvent(device)
        lines.append("one more: " + describe(try events!.read()))

        try viommu!.invalidate([SelftestVIOMMUInvalidation(vdevID: 0x99, cacheID: 0), SelftestVIOMMUInvalidation(vdevID: 0x99, cacheID: 1)])
        let caches = (0..<MOCK_DEV_CACHE_NUM).map { (cache: UInt32) -> String in
            for value in [0, IOMMU_TEST_DEV_CACHE_DEFAULT] where (try? iommufd.selftestCheckDeviceCache(device, cacheID: cache, equals: value)) != nil {
                return "0x" + String(value, radix: 16)
            }
            return "other"
        }
        lines.append("caches cleared through the vDEVICE: " + caches.joined(separator: " "))

        let iova = IOVA(0x100_0000)
        _ = try unsafe ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: page, at: iova)
        var queue: HWQueue?
        lines.append("a HW queue on a mapped page: " + outcome { () throws(IOMMUError) in
            queue = try viommu!.allocateHWQueue(type: .selftest, index: 0, iova: iova, length: page)
        })
        lines.append("unmap its page: " + outcome { () throws(IOMMUError) in _ = try ioas.unmap(iova: iova, length: page) })
        lines.append("the vIOMMU while things are on it: " + outcome { () throws(IOMMUError) in try viommu!.destroy() })
        lines.append("queue, events, vDEVICE, nested, vIOMMU, parent go: " + outcome { () throws(IOMMUError) in
            try queue?.destroy()
            queue = nil
            try events!.destroy()
            events = nil
            try iommufd.selftestReplace(device.selftestID, with: ioas.id.rawValue)
            try vdevice?.destroy()
            vdevice = nil
            try nested!.destroy()
            nested = nil
            try viommu!.destroy()
            viommu = nil
            try parent!.destroy()
            parent = nil
        })
        lines.append("unmap its page then: " + outcome { () throws(IOMMUError) in _ = try ioas.unmap(iova: iova, length: page) })
        return lines
    }
}
