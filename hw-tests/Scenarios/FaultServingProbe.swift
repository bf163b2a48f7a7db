import CIOMMUFD
import Glibc
import SystemPackage
@_spi(Selftest) import IOMMUFD

/// IO page faults served through the typed API on the selftest mock IOMMU: a fault queue,
/// a paging HWPT that sends its faults there, a mock device on it raising faults at IOVAs
/// nothing maps, and ``FaultQueue/serve(timeout:fileID:line:_:)`` resolving them by mapping
/// the page and answering SUCCESS (the kernel's translation is checked afterwards), a
/// handler that fails (INVALID), and the answers a replace gives to groups read but not
/// answered. The same function runs on the kernel (the VM lane) and on MockKernel.
public enum FaultServingProbe {
    /// What Linux 7.3 answered in the VM lane.
    public static let linuxAnswer = [
        "a fault HWPT with the device on it: ok",
        "an empty queue: 0 faults, nothing to wait for",
        "serve with nothing waiting: 0 groups",
        "a fault at 0x1000000 (read+write): waiting",
        "served 1 group: device, no pasid, group 2, read+write at 0x1000000, last",
        "the page is mapped now: ok",
        "the cookie again: EINVAL",
        "two faults, a handler that throws: 2 groups answered",
        "nothing left: 0 faults",
        "read, not answered, then the device moves: its cookie EINVAL",
        "the HWPT goes, then the queue: ok",
    ]

    /// The lines through `system` (a kernel with the selftest, or MockKernel).
    public static func lines(system: any SystemInterface) throws -> [String] {
        try ProbeOutcome.withSelftestDevice(system: system) { iommufd, ioas, device in
            try ProbeOutcome.withMemory(system: system, length: Int(page)) { memory in try lines(iommufd, ioas, device, memory) }
        }
    }

    static let page: UInt64 = 4096  // the VM lane's x86 page size

    struct HandlerFailure: Error {}

    static func lines(_ iommufd: IOMMUFD, _ ioas: IOAS, _ device: SelftestMockDevice, _ memory: UnsafeMutableRawPointer) throws -> [String] {
        var lines: [String] = []
        let outcome = ProbeOutcome.of

        var queue: FaultQueue? = try iommufd.allocateFaultQueue()
        var hwpt: HWPT? = try ioas.allocateHWPT(for: device.deviceID, faultQueue: queue)
        lines.append("a fault HWPT with the device on it: " + outcome { () throws(IOMMUError) in
            try iommufd.selftestReplace(device.selftestID, with: hwpt!.id.rawValue)
        })
        let empty = try queue!.read()
        lines.append("an empty queue: \(empty.count) faults, " + (try queue!.wait(timeout: 0) ? "something waiting" : "nothing to wait for"))
        lines.append("serve with nothing waiting: \(try queue!.serve(timeout: 0) { _ in .success }) groups")

        let address: UInt64 = 0x100_0000
        try iommufd.selftestTriggerIOPF(device, address: address)
        lines.append("a fault at 0x1000000 (read+write): " + (try queue!.wait(timeout: 1) ? "waiting" : "not waiting"))
        var served: [IOPageFault] = []
        let groups = try queue!.serve(timeout: 1) { fault in
            served.append(fault)
            _ = try unsafe ioas.map(userAddress: UInt64(UInt(bitPattern: memory)), length: page, at: IOVA(fault.address & ~(page - 1)))
            return .success
        }
        let fault = served.first
        lines.append("served \(groups) group: " + (fault.map { fault in
            "\(fault.device == device.deviceID ? "device" : "another device"), \(fault.pasid.map { "pasid \($0)" } ?? "no pasid"), "
                + "group \(fault.group), \(fault.permissions == [.read, .write] ? "read+write" : "\(fault.permissions.rawValue)") "
                + "at 0x\(String(fault.address, radix: 16))\(fault.isLastInGroup ? ", last" : "")"
        } ?? "none"))
        lines.append("the page is mapped now: " + outcome { () throws(IOMMUError) in
            try SelftestIOCTL.checkMap(iommufd.seam, iommufd.fileDescriptor.rawValue, hwpt: hwpt!.id.rawValue, iova: address, length: page,
                                       userAddress: UInt64(UInt(bitPattern: memory)), fileID: #fileID, line: #line)
        })
        lines.append("the cookie again: " + outcome { () throws(IOMMUError) in
            try queue!.respond([(cookie: fault?.cookie ?? 1, response: .success)])
        })

        try iommufd.selftestTriggerIOPF(device, group: 3, address: address + 0x10000)
        try iommufd.selftestTriggerIOPF(device, group: 4, address: address + 0x20000)
        let failed = try queue!.serve(timeout: 1) { _ in throw HandlerFailure() }
        lines.append("two faults, a handler that throws: \(failed) groups answered")
        lines.append("nothing left: \(try queue!.read().count) faults")

        try iommufd.selftestTriggerIOPF(device, group: 5, address: address + 0x30000)
        let pending = try queue!.read()
        try iommufd.selftestReplace(device.selftestID, with: ioas.id.rawValue)
        lines.append("read, not answered, then the device moves: its cookie " + outcome { () throws(IOMMUError) in
            try queue!.respond([(cookie: pending.first?.cookie ?? 0, response: .success)])
        })
        lines.append("the HWPT goes, then the queue: " + outcome { () throws(IOMMUError) in
            try hwpt!.destroy()
            hwpt = nil
            try queue!.destroy()
            queue = nil
        })
        _ = try? ioas.unmapAll()
        return lines
    }
}
