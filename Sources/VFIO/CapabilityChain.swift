import CIOMMUFD

/// The capability chain VFIO appends to an `*_info` answer: each entry starts with a
/// `vfio_info_cap_header` whose `next` is an offset from the start of the whole answer
/// (0 ends the chain). Iteration stops at the first entry that would leave the buffer
/// or point backwards, so a malformed answer cannot loop or read out of bounds.
struct CapabilityChain: Sequence {
    struct Capability {
        var id: UInt16
        var version: UInt16
        /// The bytes after the header, up to the end of the buffer.
        var body: UnsafeRawBufferPointer
    }

    let buffer: UnsafeRawBufferPointer
    let first: UInt32

    init(_ buffer: UnsafeRawBufferPointer, first: UInt32) {
        self.buffer = buffer
        self.first = first
    }

    struct Iterator: IteratorProtocol {
        let buffer: UnsafeRawBufferPointer
        var offset: Int
        var visited = 0

        mutating func next() -> Capability? {
            let headerSize = MemoryLayout<vfio_info_cap_header>.size
            guard offset != 0, offset >= headerSize, offset + headerSize <= buffer.count, visited < 64 else { return nil }
            let header = buffer.loadUnaligned(fromByteOffset: offset, as: vfio_info_cap_header.self)
            let body = UnsafeRawBufferPointer(rebasing: buffer[(offset + headerSize)...])
            visited += 1
            offset = Int(header.next) > offset ? Int(header.next) : 0
            return Capability(id: header.id, version: header.version, body: body)
        }
    }

    func makeIterator() -> Iterator { Iterator(buffer: buffer, offset: Int(first)) }
}
