import IOMMUFDSystem
public import SystemPackage
import CIOMMUFD
#if canImport(Glibc)
import Glibc
#endif

// The SystemInterface conformance, the file tree: sysfs and procfs attributes, links,
// directories, created and removed files.
extension MockKernel {
    public func readFile(_ path: String) throws(Errno) -> [UInt8] {
        unsafe try state.withLock { (state) throws(Errno) -> [UInt8] in
            // Named apart from read(2) on a descriptor (an eventfd's counter), so a trace or a
            // fault rule can tell a sysfs attribute from an interrupt.
            try state.run("readFile") { (state) throws(Errno) -> [UInt8] in
                if let attribute = state.hugePageAttribute(path) { return attribute }
                if path == "/proc/self/status", state.configuration.files[path] == nil { return state.processStatus() }
                guard let contents = state.configuration.files[path] else { throw .noSuchFileOrDirectory }
                return contents
            }
        }
    }

    public func writeFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("writeFile") { (state) throws(Errno) in
                if try state.writePCIAttribute(path, bytes) { return }
                guard state.configuration.files[path] != nil else { throw .noSuchFileOrDirectory }
                state.configuration.files[path] = bytes
            }
        }
    }

    public func createFile(_ path: String, _ bytes: [UInt8]) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("open") { (state) throws(Errno) in
                // sysfs and procfs do not make new files.
                guard !path.hasPrefix("/sys/"), !path.hasPrefix("/proc/") else { throw .permissionDenied }
                state.configuration.files[path] = bytes
            }
        }
    }

    public func removeFile(_ path: String) throws(Errno) {
        unsafe try state.withLock { (state) throws(Errno) in
            try state.run("unlink") { (state) throws(Errno) in
                guard !path.hasPrefix("/sys/"), !path.hasPrefix("/proc/") else { throw .permissionDenied }
                if let id = state.hugetlbfsFiles.removeValue(forKey: path) {
                    // The name held one reference; open descriptors and mappings keep the file.
                    state.pendingFrees += state.releaseMemoryFile(id)
                    return
                }
                guard state.configuration.files.removeValue(forKey: path) != nil else { throw .noSuchFileOrDirectory }
            }
        }
    }

    public func readLink(_ path: String) throws(Errno) -> String {
        unsafe try state.withLock { (state) throws(Errno) -> String in
            try state.run("readlink") { (state) throws(Errno) -> String in
                if let target = state.configuration.links[path] { return target }
                throw state.configuration.files[path] != nil ? .invalidArgument : .noSuchFileOrDirectory
            }
        }
    }

    public func listDirectory(_ path: String) throws(Errno) -> [String] {
        unsafe try state.withLock { (state) throws(Errno) -> [String] in
            try state.run("opendir") { (state) throws(Errno) -> [String] in
                let prefix = path.hasSuffix("/") ? path : path + "/"
                var names = Set<String>(state.hugePageDirectory(path))
                for key in Array(state.configuration.files.keys) + Array(state.configuration.links.keys) where key.hasPrefix(prefix) {
                    if let name = key.dropFirst(prefix.count).split(separator: "/").first { names.insert(String(name)) }
                }
                // An empty directory lists as empty; only a missing one is ENOENT.
                let directory = path.hasSuffix("/") ? String(path.dropLast()) : path
                if names.isEmpty && !state.configuration.directories.contains(directory) { throw .noSuchFileOrDirectory }
                return names.sorted()
            }
        }
    }
}
