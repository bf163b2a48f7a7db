/// An I/O virtual address: what a device puts on the bus, translated by the IOMMU.
///
/// A distinct type from user virtual addresses and lengths, so the two cannot be mixed up.
public struct IOVA: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    /// Creates an IOVA from its 64-bit bus address.
    public init(_ value: UInt64) { self.rawValue = value }

    public static func < (lhs: IOVA, rhs: IOVA) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The address `bytes` further on (traps on overflow).
    public func advanced(by bytes: UInt64) -> IOVA { IOVA(rawValue + bytes) }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}

/// An inclusive IOVA interval `[start, last]`, the kernel's `struct iommu_iova_range`.
public struct IOVARange: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the range.
    public var start: IOVA
    /// The last address of the range, inclusive (`last` of `struct iommu_iova_range`).
    public var last: IOVA

    /// Creates the inclusive range `[start, last]`; `last` must not be below `start`.
    public init(start: IOVA, last: IOVA) {
        self.start = start
        self.last = last
    }

    /// The range of `length` bytes from `start`; `length` must be at least 1.
    public init(start: IOVA, length: UInt64) {
        precondition(length > 0, "an IOVA range has at least one byte")
        self.start = start
        self.last = IOVA(start.rawValue + (length - 1))
    }

    /// The number of bytes, or `nil` for the full 2^64 range.
    public var length: UInt64? {
        let span = last.rawValue - start.rawValue
        return span == .max ? nil : span + 1
    }

    /// Whether `iova` lies in `[start, last]`.
    public func contains(_ iova: IOVA) -> Bool { start <= iova && iova <= last }

    public var description: String { "[\(start), \(last)]" }
}
