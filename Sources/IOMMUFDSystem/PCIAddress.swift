/// A PCI function's address, `dddd:bb:dd.f` (domain, bus, device, function), as sysfs
/// and `lspci -D` print it.
public struct PCIAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The PCI domain (segment group), `dddd`; 0 on most single-segment machines.
    public var domain: UInt16
    /// The bus number, `bb`.
    public var bus: UInt8
    /// The device number on the bus, `dd` (0-31).
    public var device: UInt8
    /// The function number, `f` (0-7).
    public var function: UInt8

    /// Why ``PCIAddress/init(parsing:)`` refused a string.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// The text (given as the payload) is not `dddd:bb:dd.f` or `bb:dd.f` in hexadecimal, or a field is out of range.
        case malformed(String)

        public var description: String {
            switch self {
            case .malformed(let text): "not a PCI address: \"\(text)\" (expected dddd:bb:dd.f, for example 0000:00:02.0)"
            }
        }
    }

    /// Creates the address `domain:bus:device.function`; `device` must be below 32 and `function` below 8.
    public init(domain: UInt16 = 0, bus: UInt8, device: UInt8, function: UInt8) {
        precondition(device < 32 && function < 8, "PCI device < 32, function < 8")
        self.domain = domain
        self.bus = bus
        self.device = device
        self.function = function
    }

    /// Parses `dddd:bb:dd.f` or the short `bb:dd.f` (domain 0), in hexadecimal.
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { throw .malformed(text) }
        let domainText = parts.count == 3 ? parts[0] : "0000"
        let busText = parts[parts.count - 2]
        let slot = parts[parts.count - 1].split(separator: ".", omittingEmptySubsequences: false)
        guard slot.count == 2,
              (parts.count == 2 || domainText.count == 4), busText.count == 2, slot[0].count == 2, slot[1].count == 1,
              let domain = UInt16(domainText, radix: 16), let bus = UInt8(busText, radix: 16),
              let device = UInt8(slot[0], radix: 16), let function = UInt8(slot[1], radix: 16),
              device < 32, function < 8
        else { throw .malformed(text) }
        self.init(domain: domain, bus: bus, device: device, function: function)
    }

    public var description: String {
        hex(domain, 4) + ":" + hex(bus, 2) + ":" + hex(device, 2) + "." + String(function, radix: 16)
    }

    public static func < (lhs: PCIAddress, rhs: PCIAddress) -> Bool {
        (lhs.domain, lhs.bus, lhs.device, lhs.function) < (rhs.domain, rhs.bus, rhs.device, rhs.function)
    }

    /// The device's sysfs directory.
    public var sysfsPath: String { "/sys/bus/pci/devices/\(description)" }

    private func hex<T: BinaryInteger>(_ value: T, _ width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
