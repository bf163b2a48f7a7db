import CIOMMUFD

/// The capability chain VFIO appends to an `*_info` answer: each entry starts with a
/// `vfio_info_cap_header` whose `next` is an offset from the start of the whole answer
/// (0 ends the chain). Iteration stops at the first entry that would leave the buffer
/// or point backwards, so a malformed answer cannot loop or read out of bounds.
// @unsafe: a view over a buffer it does not own; valid only while that buffer is.
@unsafe
struct CapabilityChain: @unsafe Sequence {
    @unsafe
    struct Capability {
        var id: UInt16
        var version: UInt16
        /// The bytes after the header, up to the end of the buffer.
        var body: UnsafeRawBufferPointer
    }

    let buffer: UnsafeRawBufferPointer
    let first: UInt32

    init(_ buffer: UnsafeRawBufferPointer, first: UInt32) {
        unsafe self.buffer = unsafe buffer
        unsafe self.first = first
    }

    @unsafe
    struct Iterator: @unsafe IteratorProtocol {
        let buffer: UnsafeRawBufferPointer
        var offset: Int
        var visited = 0

        mutating func next() -> Capability? {
            let headerSize = MemoryLayout<vfio_info_cap_header>.size
            guard unsafe offset != 0, unsafe offset >= headerSize, unsafe offset + headerSize <= buffer.count, unsafe visited < 64 else { return nil }
            let header = unsafe buffer.loadUnaligned(fromByteOffset: offset, as: vfio_info_cap_header.self)
            let body = unsafe UnsafeRawBufferPointer(rebasing: buffer[(offset + headerSize)...])
            unsafe visited += 1
            unsafe offset = unsafe Int(header.next) > offset ? Int(header.next) : 0
            return unsafe Capability(id: header.id, version: header.version, body: body)
        }
    }

    func makeIterator() -> Iterator { unsafe Iterator(buffer: buffer, offset: Int(first)) }
}
