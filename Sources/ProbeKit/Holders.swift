import IOMMUFD
import VFIO

/// D8: which processes hold a device's VFIO nodes or /dev/iommu open, from `/proc/*/fd`.
/// Another user's descriptors are visible only to root; an unprivileged scan says so.
struct Holders {
    let files: SystemFiles

    func holders(of nodes: Set<String>) -> (holders: [String], unreadable: Int) {
        var holders: [String] = []
        var unreadable = 0
        let ownProcess = files.link("/proc/self").flatMap { Int($0) }
        for entry in files.list("/proc") ?? [] {
            guard let pid = Int(entry), pid != ownProcess else { continue }
            guard let descriptors = files.list("/proc/\(pid)/fd") else { unreadable += 1; continue }
            for descriptor in descriptors {
                guard let target = files.link("/proc/\(pid)/fd/\(descriptor)"), nodes.contains(target) else { continue }
                let command = files.text("/proc/\(pid)/comm") ?? "?"
                holders.append("pid \(pid) (\(command)) holds \(target)")
            }
        }
        return (holders, unreadable)
    }

    func run(_ address: PCIAddress, group: String, cdev: String?, into report: inout ProbeReport) {
        var nodes: Set<String> = ["/dev/vfio/\(group)"]
        if let cdev { nodes.insert("/dev/vfio/devices/\(cdev)") }
        let (holders, unreadable) = holders(of: nodes)
        let evidence = "/proc/*/fd scanned for \(nodes.sorted().joined(separator: " "))" + (unreadable > 0 ? "; \(unreadable) processes not readable (run as root to see them)" : "")
        if holders.isEmpty {
            report.add("D8", .pass, "no other process holds the device", evidence: evidence, device: address.description)
        } else {
            report.add("D8", .warn, "device busy: " + holders.joined(separator: "; "), evidence: evidence,
                       fix: "stop that process (a device and its group can be owned by one process at a time)", device: address.description)
        }
    }
}
