import IOMMUFD
import VFIO

/// Why taking a group away from the host would hurt it: a member backs a mounted
/// filesystem, or is a network interface with routes (what SPDK's setup.sh and
/// dpdk-devbind refuse to unbind).
public struct DangerGuard {
    let files: SystemFiles

    /// Creates a guard that reads sysfs, `/proc/self/mountinfo` and the routing tables through `system`.
    public init(system: any SystemInterface) { files = SystemFiles(system: system) }

    /// One reason to refuse.
    public struct Hazard: Sendable, Hashable, CustomStringConvertible {
        /// The group member concerned, `dddd:bb:dd.f`.
        public var device: String
        /// What the host would lose, e.g. "backs mounted block device(s) nvme0n1p2" or "network interface eth0 has routes".
        public var reason: String
        public var description: String { "\(device): \(reason)" }
    }

    /// The functions of `address`'s IOMMU group (just `address` when it has none).
    func groupMembers(of address: PCIAddress) -> [String] {
        guard let function = try? PCIFunction(address, system: files.system) else { return [address.description] }
        return function.groupMembers(system: files.system).members.map(\.address.description)
    }

    /// Every hazard in the group of `address`.
    public func hazards(of address: PCIAddress) -> [Hazard] {
        let mounted = mountedSources()
        let routed = routedInterfaces()
        var hazards: [Hazard] = []
        for member in groupMembers(of: address) {
            // Block devices whose sysfs path runs through this function.
            for block in files.list("/sys/block") ?? [] {
                guard let target = files.link("/sys/block/\(block)"), target.split(separator: "/").contains(Substring(member)) else { continue }
                let partitions = mounted.filter { $0 == block || ($0.hasPrefix(block) && $0.count > block.count) }
                if !partitions.isEmpty {
                    hazards.append(Hazard(device: member, reason: "backs mounted block device(s) \(partitions.sorted().joined(separator: ", "))"))
                }
            }
            for interface in files.list("/sys/bus/pci/devices/\(member)/net") ?? [] where routed.contains(interface) {
                hazards.append(Hazard(device: member, reason: "network interface \(interface) has routes"))
            }
        }
        return hazards
    }

    /// Kernel names of mounted block devices (`/dev/nvme0n1p2` → `nvme0n1p2`), from mountinfo.
    func mountedSources() -> Set<String> {
        var sources = Set<String>()
        for line in (files.text("/proc/self/mountinfo") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let separator = fields.firstIndex(of: "-"), separator + 2 < fields.count else { continue }
            let source = fields[separator + 2]
            if source.hasPrefix("/dev/") { sources.insert(String(source.dropFirst(5))) }
        }
        return sources
    }

    /// Interfaces that appear in the IPv4 routing table (`/proc/net/route`) or IPv6's.
    func routedInterfaces() -> Set<String> {
        var interfaces = Set<String>()
        for line in (files.text("/proc/net/route") ?? "").split(separator: "\n").dropFirst() {
            if let name = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).first { interfaces.insert(String(name)) }
        }
        for line in (files.text("/proc/net/ipv6_route") ?? "").split(separator: "\n") {
            if let name = line.split(separator: " ").last, name != "lo" { interfaces.insert(String(name)) }
        }
        return interfaces
    }
}
