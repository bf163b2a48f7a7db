/// What mock devices do when a driver touches their registers: the handlers tests
/// (and mock device models) registered per function, BAR and register range, kept in
/// registration order. Separate from ``KernelState`` so that an ioctl's transactional
/// copy of the model never copies closures, and so a handler can be called with no
/// lock held.
struct RegisterHandlers {
    /// One registration.
    struct Entry<Handler> {
        /// The function, as its index in `configuration.pciDevices`.
        var deviceIndex: Int
        /// Its address, handed to the handler.
        var address: String
        var bar: Int
        /// Bytes of the BAR the handler covers; an access overlapping them reaches it.
        var offsets: Range<UInt64>
        var handler: Handler

        func matches(_ deviceIndex: Int, _ bar: Int, _ offset: UInt64, _ width: Int) -> Bool {
            self.deviceIndex == deviceIndex && self.bar == bar
                && offsets.overlaps(offset..<(offset &+ UInt64(width)))
        }
    }

    var writes: [Entry<MockKernel.RegisterWriteHandler>] = []
    var reads: [Entry<MockKernel.RegisterReadHandler>] = []
}
