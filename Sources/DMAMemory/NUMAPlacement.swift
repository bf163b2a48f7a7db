public import IOMMUFD
import CIOMMUFD
import SystemPackage

/// Which NUMA node a region's pages should come from.
public enum NUMAPlacement: Sendable, Hashable {
    /// Wherever the kernel puts them (the process's policy); nothing is checked.
    case anyNode
    /// Node `node`. `strict`: bind (`MPOL_BIND`) and fail when a page lands elsewhere;
    /// otherwise prefer it (`MPOL_PREFERRED`) and only report where pages landed.
    case node(Int, strict: Bool)
    /// The node of the device (its sysfs `numa_node`; `nil` when the platform does not
    /// say, as on single-node machines), preferred rather than bound: a device's memory
    /// is better remote than missing.
    case deviceNode(Int?)

    /// The node asked for and whether it is bound, or `nil` for no placement.
    var target: (node: Int, strict: Bool)? {
        switch self {
        case .anyNode: nil
        case .node(let node, let strict): (node, strict)
        case .deviceNode(let node): node.map { ($0, false) }
        }
    }
}

/// Where a region's pages actually are, from `move_pages(2)` after they were faulted in.
public struct NUMAReport: Sendable, Hashable, CustomStringConvertible {
    /// The node asked for (`nil`: none).
    public var requestedNode: Int?
    /// Sampled pages per node.
    public var pagesPerNode: [Int: Int]
    /// Sampled pages the kernel could not place (not present, or an error).
    public var unplacedPages: Int
    /// How many pages were sampled (every page of small regions; evenly spread samples of large ones).
    public var sampledPages: Int

    /// Creates a report from the requested node (`nil`: none), the sampled page count per node, the sampled pages
    /// without a node, and the number of pages sampled.
    public init(requestedNode: Int?, pagesPerNode: [Int: Int], unplacedPages: Int, sampledPages: Int) {
        self.requestedNode = requestedNode
        self.pagesPerNode = pagesPerNode
        self.unplacedPages = unplacedPages
        self.sampledPages = sampledPages
    }

    /// Whether every sampled page is on the requested node (true when none was requested).
    public var isOnRequestedNode: Bool {
        guard let requestedNode else { return true }
        return unplacedPages == 0 && pagesPerNode.keys.allSatisfy { $0 == requestedNode }
    }

    public var description: String {
        let nodes = pagesPerNode.sorted { $0.key < $1.key }.map { "node \($0.key): \($0.value)" }.joined(separator: ", ")
        return "requested \(requestedNode.map(String.init) ?? "any"); \(sampledPages) pages sampled (\(nodes)\(unplacedPages > 0 ? ", unplaced: \(unplacedPages)" : ""))"
    }
}

extension NUMAPlacement {
    /// The online NUMA nodes (`/sys/devices/system/node/online`); `[0]` when the file is missing.
    public static func onlineNodes(system: any SystemInterface) -> [Int] {
        NUMAPolicy.onlineNodes(system: system)
    }
}

/// The NUMA side of a region: online nodes, binding, and checking where pages landed.
enum NUMAPolicy {
    /// At most this many pages are asked about per region.
    static let maximumSamples = 512

    /// The online nodes (`/sys/devices/system/node/online`, such as `0-1,3`); `[0]` when the file is missing.
    static func onlineNodes(system: any SystemInterface) -> [Int] {
        guard let bytes = try? system.readFile("/sys/devices/system/node/online") else { return [0] }
        var nodes: [Int] = []
        for part in String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "," || $0 == "\n" }) {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2 { nodes += Array(bounds[0]...bounds[1]) } else if let node = bounds.first { nodes.append(node) }
        }
        return nodes.isEmpty ? [0] : nodes
    }

    /// Sets the policy of `[address, address + length)` before its pages are faulted in.
    static func apply(_ placement: NUMAPlacement, address: UnsafeMutableRawPointer, length: Int, system: any SystemInterface) throws(DMAMemoryError) {
        guard let (node, strict) = placement.target else { return }
        let online = onlineNodes(system: system)
        guard online.contains(node), node < 64 else { throw .numaNodeUnavailable(node, online: online) }
        do {
            unsafe try system.mbind(address, length: length, mode: strict ? CIOMMUFD_MPOL_BIND : CIOMMUFD_MPOL_PREFERRED,
                             nodeMask: 1 << UInt64(node), flags: CIOMMUFD_MPOL_MF_MOVE)
        } catch {
            throw .system(.mbind, error)
        }
    }

    /// Where the pages of the region are (sampled), once they have been faulted in.
    static func verify(_ placement: NUMAPlacement, address: UnsafeMutableRawPointer, length: Int, pageSize: Int,
                       system: any SystemInterface) throws(DMAMemoryError) -> NUMAReport {
        let pages = max(1, length / pageSize)
        let step = max(1, pages / maximumSamples)
        let samples = unsafe stride(from: 0, to: pages, by: step).map { unsafe UnsafeRawPointer(address + $0 * pageSize) }
        let status: [Int32]
        do { status = unsafe try system.pageNodes(samples) } catch { throw .system(.movePages, error) }
        var perNode: [Int: Int] = [:]
        var unplaced = 0
        for node in status {
            if node >= 0 { perNode[Int(node), default: 0] += 1 } else { unplaced += 1 }
        }
        let report = unsafe NUMAReport(requestedNode: placement.target?.node, pagesPerNode: perNode, unplacedPages: unplaced, sampledPages: samples.count)
        if let target = placement.target, target.strict, !report.isOnRequestedNode { throw .misplaced(report) }
        return report
    }
}
