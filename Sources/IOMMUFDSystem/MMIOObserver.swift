/// A watcher of register accesses through one mapped device region, for a model of
/// the system that plays the device (MockKernel). On real hardware there is none.
///
/// A real BAR is device memory: a store to it *is* the device seeing the write. A
/// model's BAR is ordinary memory, so the model needs to be told. The mapping asks
/// its ``SystemInterface`` for an observer once, when the region is mapped
/// (``SystemInterface/mmioObserver(fd:offset:)``), and keeps it for its lifetime.
///
/// It is two C function pointers and two words, so an access that has to report
/// costs one indirect call, and the value carries nothing the accessor must retain
/// or release: a real-hardware access pays only the test that no observer is there.
///
/// Safety: `context` is not retained. Whoever hands out an observer keeps what
/// `context` points at alive for as long as the mapping can be used (MockKernel's
/// context is the kernel itself, which every mapping holds as its system).
@unsafe
public struct MMIOObserver: @unchecked Sendable {
    /// Called after a store: `(context, region, offset, width, value)`, where
    /// `offset` is from the start of the mapping, `width` is 1, 2, 4 or 8 bytes, and
    /// `value` is the value the driver wrote (in CPU order, zero-extended).
    public typealias WriteHandler = @convention(c) (
        _ context: UnsafeRawPointer, _ region: UInt64, _ offset: UInt64, _ width: Int, _ value: UInt64
    ) -> Void

    /// Called after a load with the same arguments, `value` being what the load
    /// returned (in CPU order, zero-extended). What it returns is what the driver
    /// reads (a model returns `value` unchanged unless it plays the register).
    public typealias ReadHandler = @convention(c) (
        _ context: UnsafeRawPointer, _ region: UInt64, _ offset: UInt64, _ width: Int, _ value: UInt64
    ) -> UInt64

    /// Passed back unchanged to the handlers (MockKernel's: the kernel, unretained).
    public let context: UnsafeRawPointer
    /// Which mapping the access went through, as the observer encoded it when the
    /// region was mapped (MockKernel's: the device and the region offset).
    public let region: UInt64
    /// Called after every store through the mapping.
    public let didWrite: WriteHandler
    /// Called after every load through the mapping.
    public let didRead: ReadHandler

    /// An observer that calls `didWrite` and `didRead` with `context` and `region`.
    public init(context: UnsafeRawPointer, region: UInt64, didWrite: WriteHandler, didRead: ReadHandler) {
        unsafe self.context = unsafe context
        unsafe self.region = region
        unsafe self.didWrite = unsafe didWrite
        unsafe self.didRead = unsafe didRead
    }
}

extension SystemInterface {
    /// No observer: accesses to a mapped region go straight to the device. This is
    /// the default, and what ``LinuxSystem`` always answers.
    public func mmioObserver(fd: Int32, offset: Int64) -> MMIOObserver? { nil }
}
