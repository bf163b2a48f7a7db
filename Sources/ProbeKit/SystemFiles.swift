import IOMMUFD

/// Reading the machine's description (procfs, sysfs, /boot) through the system seam,
/// so the probe runs unchanged against a fake tree in MockKernel.
struct SystemFiles {
    let system: any SystemInterface

    /// A file's text without the trailing newline, or nil when it cannot be read.
    func text(_ path: String) -> String? {
        guard let bytes = try? system.readFile(path) else { return nil }
        return SysfsText.trimmed(bytes)
    }

    func list(_ path: String) -> [String]? { try? system.listDirectory(path) }

    func link(_ path: String) -> String? { try? system.readLink(path) }

    /// The last path component of a symbolic link's target (`../../../bus/pci/drivers/vfio-pci` → `vfio-pci`).
    func linkName(_ path: String) -> String? {
        link(path).flatMap { $0.split(separator: "/").last.map(String.init) }
    }

    /// `KEY: value` from a /proc status-style file.
    func field(_ name: String, in path: String) -> String? {
        guard let text = text(path) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 && parts[0].trimmingCharacters() == name { return parts[1].trimmingCharacters() }
        }
        return nil
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

extension String {
    func trimmingCharacters() -> String { Substring(self).trimmingCharacters() }
}
