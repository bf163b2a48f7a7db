public import IOMMUFDSystem

// The device side of BAR accesses: a mock function's BARs are ordinary memory, so a
// store through a mapping changes them but tells the function nothing. Mappings made
// through the model carry its MMIOObserver; each access through them is checked
// against the handlers registered here, which play the device's reaction.
extension MockKernel {
    /// One access a driver made to a register of a mock function through a mapped BAR.
    public struct RegisterAccess: Sendable, Hashable, CustomStringConvertible {
        /// The function's address, `dddd:bb:dd.f`.
        public var device: String
        /// The BAR (0-5).
        public var bar: Int
        /// From the start of the BAR.
        public var offset: UInt64
        /// 1, 2, 4 or 8 bytes.
        public var width: Int
        /// The value written, or the value the read found (CPU order, zero-extended).
        public var value: UInt64

        /// An access as a handler receives it.
        public init(device: String, bar: Int, offset: UInt64, width: Int, value: UInt64) {
            self.device = device
            self.bar = bar
            self.offset = offset
            self.width = width
            self.value = value
        }

        /// `0000:00:04.0 BAR0+0x1000/4 = 0x3`.
        public var description: String {
            "\(device) BAR\(bar)+0x\(String(offset, radix: 16))/\(width) = 0x\(String(value, radix: 16))"
        }
    }

    /// What a mock function does when a register is written. It runs on the driver's
    /// thread right after the store (the BAR's memory already holds the new value),
    /// with no lock of the model held, so it may call any method of the kernel it is
    /// given: read or write DMA memory (``pciDeviceRead(_:iova:length:)``), raise an
    /// interrupt, change its own registers (``barMemory(_:bar:)``). Use the kernel
    /// passed in rather than capturing one: a capture would keep the kernel alive forever.
    public typealias RegisterWriteHandler = @Sendable (_ kernel: MockKernel, _ access: RegisterAccess) -> Void

    /// What a mock function answers when a register is read: called right after the
    /// load with what it found in ``RegisterAccess/value``; a non-`nil` result is what
    /// the driver reads instead (truncated to the access's width). Runs like a
    /// ``RegisterWriteHandler``.
    public typealias RegisterReadHandler = @Sendable (_ kernel: MockKernel, _ access: RegisterAccess) -> UInt64?

    /// Calls `handler` after every write that overlaps `offsets` of BAR `bar` of the
    /// function at `address`, through any mapping, now or later: "when the doorbell at
    /// BAR0+0x1000 is written, do X". Handlers stay until
    /// ``removeRegisterHandlers(_:)``, across opens and resets of the function. Several
    /// handlers for one register run in the order they were registered. Writes no
    /// handler covers only change the BAR's memory, as before.
    public func onRegisterWrite(_ address: String, bar: Int, offsets: Range<UInt64>, _ handler: @escaping RegisterWriteHandler) {
        let index = deviceIndex(address, bar: bar)
        unsafe registerHandlers.withLock {
            $0.writes.append(.init(deviceIndex: index, address: address, bar: bar, offsets: offsets, handler: handler))
        }
    }

    /// Calls `handler` after every write that covers byte `offset` of BAR `bar`.
    public func onRegisterWrite(_ address: String, bar: Int, at offset: UInt64, _ handler: @escaping RegisterWriteHandler) {
        onRegisterWrite(address, bar: bar, offsets: offset..<(offset + 1), handler)
    }

    /// Calls `handler` after every read that overlaps `offsets` of BAR `bar` of the
    /// function at `address`; what it returns (when not `nil`) is what the driver reads.
    /// Several handlers for one register run in registration order, each seeing the
    /// value the one before it decided.
    public func onRegisterRead(_ address: String, bar: Int, offsets: Range<UInt64>, _ handler: @escaping RegisterReadHandler) {
        let index = deviceIndex(address, bar: bar)
        unsafe registerHandlers.withLock {
            $0.reads.append(.init(deviceIndex: index, address: address, bar: bar, offsets: offsets, handler: handler))
        }
    }

    /// Calls `handler` after every read that covers byte `offset` of BAR `bar`.
    public func onRegisterRead(_ address: String, bar: Int, at offset: UInt64, _ handler: @escaping RegisterReadHandler) {
        onRegisterRead(address, bar: bar, offsets: offset..<(offset + 1), handler)
    }

    /// Forgets every register handler of the function at `address`.
    public func removeRegisterHandlers(_ address: String) {
        unsafe registerHandlers.withLock { handlers in
            handlers.writes.removeAll { $0.address == address }
            handlers.reads.removeAll { $0.address == address }
        }
    }

    /// A test naming a function or BAR the machine does not have is a mistake in the test.
    private func deviceIndex(_ address: String, bar: Int) -> Int {
        unsafe state.withLock { state in
            guard let index = state.configuration.pciDevices.firstIndex(where: { $0.address == address }) else {
                preconditionFailure("no mock PCI function at \(address)")
            }
            precondition((0..<6).contains(bar) && state.configuration.pciDevices[index].barSizes[bar] > 0,
                         "\(address) has no BAR\(bar)")
            return index
        }
    }

    // MARK: The observer every device mapping carries

    /// The observer of a BAR mapped from a VFIO device descriptor: the kernel itself
    /// (unretained; each mapping holds the kernel as its system), and the function and
    /// region offset packed as `deviceIndex << 48 | offset` (a region offset is
    /// `bar << 40 | start`). `nil` for any other descriptor.
    public func mmioObserver(fd: Int32, offset: Int64) -> MMIOObserver? {
        let deviceIndex: Int? = unsafe state.withLock { state in
            guard case .vfioDevice(let fileID)? = state.descriptors[fd], let file = state.vfio.deviceFiles[fileID] else { return nil }
            return file.deviceIndex
        }
        guard let deviceIndex, offset >= 0, UInt64(offset) >> vfioRegionShift < 6 else { return nil }
        return unsafe MMIOObserver(
            context: UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()),
            region: UInt64(deviceIndex) << 48 | UInt64(offset),
            didWrite: { context, region, offset, width, value in
                unsafe Unmanaged<MockKernel>.fromOpaque(context).takeUnretainedValue()
                    .registerWritten(region: region, offset: offset, width: width, value: value)
            },
            didRead: { context, region, offset, width, value in
                unsafe Unmanaged<MockKernel>.fromOpaque(context).takeUnretainedValue()
                    .registerRead(region: region, offset: offset, width: width, value: value)
            })
    }

    /// Where an access through a mapping lands: the function, the BAR and the offset in it.
    private func locate(_ region: UInt64, _ offset: UInt64) -> (deviceIndex: Int, bar: Int, offset: UInt64) {
        let regionOffset = region & ((1 << 48) - 1)
        return (Int(region >> 48), Int(regionOffset >> vfioRegionShift), (regionOffset & ((1 << vfioRegionShift) - 1)) + offset)
    }

    private func registerWritten(region: UInt64, offset: UInt64, width: Int, value: UInt64) {
        let (deviceIndex, bar, barOffset) = locate(region, offset)
        let matching = unsafe registerHandlers.withLock { $0.writes.filter { $0.matches(deviceIndex, bar, barOffset, width) } }
        for entry in matching {
            entry.handler(self, RegisterAccess(device: entry.address, bar: bar, offset: barOffset, width: width, value: value))
        }
    }

    private func registerRead(region: UInt64, offset: UInt64, width: Int, value: UInt64) -> UInt64 {
        let (deviceIndex, bar, barOffset) = locate(region, offset)
        let matching = unsafe registerHandlers.withLock { $0.reads.filter { $0.matches(deviceIndex, bar, barOffset, width) } }
        let mask: UInt64 = width >= 8 ? .max : (1 << UInt64(width * 8)) - 1
        var result = value
        for entry in matching {
            let access = RegisterAccess(device: entry.address, bar: bar, offset: barOffset, width: width, value: result)
            if let answer = entry.handler(self, access) { result = answer & mask }
        }
        return result
    }
}
