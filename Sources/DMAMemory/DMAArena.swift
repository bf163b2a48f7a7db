public import IOMMUFD
import Synchronization

/// A piece of a ``DMAArena``: where the CPU reaches it and where the device does.
public struct DMASlice: Sendable, Hashable {
    /// Its offset in the arena's region.
    public let offset: Int
    /// Its length in bytes (as asked; the arena may keep a little more for alignment).
    public let length: Int
    /// The device's address of its first byte.
    public let iova: IOVA
    let addressBits: UInt

    /// The CPU's address of its first byte.
    public var address: UnsafeMutableRawPointer { unsafe UnsafeMutableRawPointer(bitPattern: addressBits)! }
}

/// Rings and small DMA objects carved from one mapped ``DMARegion``: an NVMe driver's
/// submission and completion queues and PRP lists, a NIC's descriptor rings, each aligned
/// (a cache line by default, a page for queues the device wants page aligned), all behind
/// one IOMMU mapping. First fit over the free ranges in address order; a freed slice merges
/// with its free neighbours. For setup and teardown, not the I/O path (a pool
/// (``DMABufferPool``) is for per-I/O buffers).
public final class DMAArena: Sendable {
    /// The CPU cache line: the default alignment, so that two objects never share a line.
    public static let cacheLine = 64

    /// The region the slices come from; the arena owns it.
    public let region: DMARegion
    /// Free ranges of offsets, in address order, none touching another.
    private let free: Mutex<[Range<Int>]>
    /// Live slices: start offset to the range they hold (alignment padding included).
    private let taken: Mutex<[Int: Range<Int>]>

    /// An arena over all of `region`.
    public init(region: consuming DMARegion) {
        let length = region.length
        self.region = region
        free = Mutex([0..<length])
        taken = Mutex([:])
    }

    /// The bytes not handed out (padding of live slices aside).
    public var bytesFree: Int { free.withLock { $0.reduce(0) { $0 + $1.count } } }

    /// A slice of `length` bytes (at least 1) whose IOVA is a multiple of `alignment` (a
    /// power of two; the address is too, up to the region's page size), or `nil` when no
    /// free range holds one.
    public func allocate(_ length: Int, alignment: Int = DMAArena.cacheLine) -> DMASlice? {
        precondition(length > 0 && alignment > 0 && alignment & (alignment - 1) == 0, "a positive length and a power-of-two alignment")
        let base = Int(region.iova.rawValue & UInt64(Int.max))
        let range: Range<Int>? = free.withLock { free in
            for (index, candidate) in free.enumerated() {
                let start = ((base + candidate.lowerBound + alignment - 1) & ~(alignment - 1)) - base
                guard start + length <= candidate.upperBound else { continue }
                var pieces: [Range<Int>] = []
                if start > candidate.lowerBound { pieces.append(candidate.lowerBound..<start) }
                if start + length < candidate.upperBound { pieces.append((start + length)..<candidate.upperBound) }
                free.replaceSubrange(index...index, with: pieces)
                return start..<(start + length)
            }
            return nil
        }
        guard let range else { return nil }
        taken.withLock { $0[range.lowerBound] = range }
        return DMASlice(offset: range.lowerBound, length: length, iova: IOVA(region.iova.rawValue + UInt64(range.lowerBound)),
                        addressBits: UInt(bitPattern: unsafe region.address) + UInt(range.lowerBound))
    }

    /// Gives a slice back; it merges with its free neighbours.
    public func free(_ slice: DMASlice) {
        guard let range = taken.withLock({ $0.removeValue(forKey: slice.offset) }) else {
            preconditionFailure("the slice at offset \(slice.offset) is not live in this arena (freed twice, or another arena's)")
        }
        free.withLock { free in
            let index = free.firstIndex { $0.lowerBound > range.lowerBound } ?? free.endIndex
            var merged = range
            var removeFrom = index, removeTo = index
            if index > 0, free[index - 1].upperBound == merged.lowerBound {
                merged = free[index - 1].lowerBound..<merged.upperBound
                removeFrom = index - 1
            }
            if index < free.endIndex, free[index].lowerBound == merged.upperBound {
                merged = merged.lowerBound..<free[index].upperBound
                removeTo = index + 1
            }
            free.replaceSubrange(removeFrom..<removeTo, with: [merged])
        }
    }
}
