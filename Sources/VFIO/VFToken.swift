/// The SR-IOV VF token: a UUID shared between the owner of a PF bound to vfio-pci and
/// the users of its VFs (`VFIO_DEVICE_FEATURE_PCI_VF_TOKEN`). Opening a VF needs it
/// (`vf_token=` on the legacy path, `VFIO_DEVICE_BIND_FLAG_TOKEN` on the cdev path).
public struct VFToken: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes in the order the kernel's `uuid_t` keeps them.
    public var bytes: [UInt8]

    /// Why ``VFToken/init(parsing:)`` refused a string.
    public enum ParseError: Error, Equatable {
        /// The text (given as the payload) is not a UUID in the 8-4-4-4-12 hexadecimal form.
        case malformed(String)
    }

    /// Creates a token from the 16 bytes of its UUID, in `uuid_t` order.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a UUID has 16 bytes")
        self.bytes = bytes
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hexadecimal, either case).
    public init(parsing text: String) throws(ParseError) {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { throw .malformed(text) }
        var bytes: [UInt8] = []
        let digits = Array(groups.joined())
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(digits[index...index + 1]), radix: 16) else { throw .malformed(text) }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    public var description: String {
        let hex = bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }
}
