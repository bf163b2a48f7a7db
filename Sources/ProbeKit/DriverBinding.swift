import IOMMUFD
public import SystemPackage
import VFIO

/// Moves a PCI function between drivers the way the kernel documents it
/// (Documentation/ABI/testing/sysfs-bus-pci): `driver_override`, `<driver>/unbind`,
/// `drivers_probe`. Remembers the driver it took the function from, so unbinding gives
/// it back, and optionally persists the choice in driverctl's format
/// (`/etc/driverctl.d/pci-<address>` holding the driver name).
public struct DriverBinding {
    let files: SystemFiles

    /// Creates a binder that reads and writes sysfs through `system` (a MockKernel presents a fake tree).
    public init(system: any SystemInterface = LinuxSystem()) { files = SystemFiles(system: system) }

    /// What a bind or unbind did.
    public struct Outcome: Sendable, Hashable {
        /// The function's address, `dddd:bb:dd.f`.
        public var address: String
        /// The driver the function was bound to before (`nil`: none).
        public var previousDriver: String?
        /// The driver the function is bound to afterwards, read back from sysfs (`nil`: none).
        public var driver: String?
        /// The sysfs writes made, in order (what an operator would type).
        public var steps: [String]
    }

    /// Why ``DriverBinding/bind(_:to:persist:force:)`` or ``DriverBinding/unbind(_:)`` failed.
    public enum BindingError: Error, CustomStringConvertible {
        /// No function with this address (the payload) exists: `/sys/bus/pci/devices/<address>/vendor` cannot be read.
        case noSuchDevice(String)
        /// The host uses the group: the hazards, and `--force` overrides.
        case refused([DangerGuard.Hazard])
        /// Writing `value` to the sysfs (or driverctl) file `path` failed with `errno` (`EACCES`/`EPERM`: not root).
        case writeFailed(path: String, value: String, errno: Errno)
        /// After `drivers_probe` the function is on `actual` (`nil`: no driver), not `expected` (e.g. its module is not loaded).
        case notBound(address: String, expected: String, actual: String?)

        public var description: String {
            switch self {
            case .noSuchDevice(let address):
                return "no PCI device \(address) (see `lspci -D`)"
            case .refused(let hazards):
                return "refusing to take the device from the host: " + hazards.map(\.description).joined(separator: "; ") + " (--force overrides)"
            case .writeFailed(let path, let value, let errno):
                let hint = errno == .permissionDenied || errno == .notPermitted ? " (needs root)" : ""
                return "writing \"\(value)\" to \(path) failed: \(errno)\(hint)"
            case .notBound(let address, let expected, let actual):
                return "\(address) is on \(actual ?? "no driver") after drivers_probe, not \(expected) (is the \(expected) module loaded? `modprobe \(expected)`)"
            }
        }
    }

    /// Where the driver a function was taken from is remembered until it is unbound.
    static func recordPath(_ address: PCIAddress) -> String { "/run/iommufd-probe-pci-\(address).driver" }
    /// driverctl's persistent override.
    static func driverctlPath(_ address: PCIAddress) -> String { "/etc/driverctl.d/pci-\(address)" }

    /// The driver the function is bound to now.
    public func currentDriver(of address: PCIAddress) -> String? { files.linkName(address.sysfsPath + "/driver") }

    /// Binds `address` to `driver` (vfio-pci by default). Refuses when its IOMMU group
    /// backs a mounted filesystem or a routed interface, unless `force`.
    @discardableResult
    public func bind(_ address: PCIAddress, to driver: String = "vfio-pci", persist: Bool = false, force: Bool = false) throws(BindingError) -> Outcome {
        let base = address.sysfsPath
        guard files.text(base + "/vendor") != nil else { throw .noSuchDevice(address.description) }
        if !force {
            let hazards = DangerGuard(system: files.system).hazards(of: address)
            if !hazards.isEmpty { throw .refused(hazards) }
        }
        let previous = currentDriver(of: address)
        var outcome = Outcome(address: address.description, previousDriver: previous, driver: previous, steps: [])
        if previous != driver {
            if previous != nil { try? files.system.createFile(Self.recordPath(address), Array((previous ?? "").utf8)) }
            try write(driver, to: base + "/driver_override", &outcome)
            if previous != nil { try write(address.description, to: base + "/driver/unbind", &outcome) }
            try write(address.description, to: "/sys/bus/pci/drivers_probe", &outcome)
            outcome.driver = currentDriver(of: address)
            guard outcome.driver == driver else { throw .notBound(address: address.description, expected: driver, actual: outcome.driver) }
        }
        if persist {
            do { try files.system.createFile(Self.driverctlPath(address), Array((driver + "\n").utf8)) } catch {
                throw .writeFailed(path: Self.driverctlPath(address), value: driver, errno: error)
            }
            outcome.steps.append("echo \(driver) > \(Self.driverctlPath(address))")
        }
        return outcome
    }

    /// Unbinds `address` from its driver, clears the override and lets the kernel give it
    /// back to its own driver (the one it was taken from); forgets the driverctl override.
    @discardableResult
    public func unbind(_ address: PCIAddress) throws(BindingError) -> Outcome {
        let base = address.sysfsPath
        guard files.text(base + "/vendor") != nil else { throw .noSuchDevice(address.description) }
        let previous = currentDriver(of: address)
        var outcome = Outcome(address: address.description, previousDriver: previous, driver: previous, steps: [])
        try write("\n", to: base + "/driver_override", &outcome)
        if previous != nil { try write(address.description, to: base + "/driver/unbind", &outcome) }
        try write(address.description, to: "/sys/bus/pci/drivers_probe", &outcome)
        outcome.driver = currentDriver(of: address)
        let remembered = files.text(Self.recordPath(address))
        if let remembered, !remembered.isEmpty, outcome.driver != remembered {
            throw .notBound(address: address.description, expected: remembered, actual: outcome.driver)
        }
        try? files.system.removeFile(Self.recordPath(address))
        if files.text(Self.driverctlPath(address)) != nil {
            do { try files.system.removeFile(Self.driverctlPath(address)) } catch {
                throw .writeFailed(path: Self.driverctlPath(address), value: "(unlink)", errno: error)
            }
            outcome.steps.append("rm \(Self.driverctlPath(address))")
        }
        return outcome
    }

    private func write(_ value: String, to path: String, _ outcome: inout Outcome) throws(BindingError) {
        do { try files.system.writeFile(path, Array(value.utf8)) } catch {
            throw .writeFailed(path: path, value: value, errno: error)
        }
        outcome.steps.append(value == "\n" ? "echo > \(path)" : "echo \(value) > \(path)")
    }
}
