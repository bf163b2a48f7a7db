import Logging
import Foundation
import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A PCI interrupt kind, by its VFIO index.
public enum PCIInterruptKind: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `VFIO_PCI_INTX_IRQ_INDEX`: the legacy level-triggered INTx line, one vector, masked by the kernel on each interrupt.
    case intx = 0
    /// `VFIO_PCI_MSI_IRQ_INDEX`: MSI, up to 32 vectors.
    case msi = 1
    /// `VFIO_PCI_MSIX_IRQ_INDEX`: MSI-X, up to 2048 vectors.
    case msix = 2
    /// `VFIO_PCI_ERR_IRQ_INDEX`: signalled when AER reports an uncorrectable error on the device.
    case error = 3
    /// `VFIO_PCI_REQ_IRQ_INDEX`: signalled when the kernel asks the user to release the device (e.g. on unbind).
    case request = 4

    public var description: String {
        switch self {
        case .intx: "INTx"
        case .msi: "MSI"
        case .msix: "MSI-X"
        case .error: "AER error"
        case .request: "device request"
        }
    }
}

/// What `VFIO_DEVICE_GET_IRQ_INFO` reports for one interrupt kind.
public struct VFIOInterruptInfo: Sendable, Hashable {
    /// The interrupt index the answer is for.
    public var kind: PCIInterruptKind
    /// The raw `VFIO_IRQ_INFO_*` bits (`EVENTFD`, `MASKABLE`, `AUTOMASKED`, `NORESIZE`).
    public var flags: UInt32
    /// How many vectors the device offers (0: this kind is not available).
    public var count: UInt32

    /// Whether the vectors can be wired to eventfds (`VFIO_IRQ_INFO_EVENTFD`).
    public var signalsEventFD: Bool { flags & VFIO_IRQ_INFO_EVENTFD != 0 }
    /// Whether the vectors can be masked and unmasked through `VFIO_DEVICE_SET_IRQS` (`VFIO_IRQ_INFO_MASKABLE`).
    public var isMaskable: Bool { flags & VFIO_IRQ_INFO_MASKABLE != 0 }
    /// INTx: the kernel masks the line on each interrupt; unmask after handling it.
    public var isAutomasked: Bool { flags & VFIO_IRQ_INFO_AUTOMASKED != 0 }
}

/// Interrupt vectors wired to eventfds, with exactly one owner: the value cannot be copied,
/// so no second handle can read (and so steal) a vector's count or keep a closed descriptor.
/// Each vector's eventfd counts the interrupts that arrived since it was last read. The
/// descriptors are non-blocking and close-on-exec, and are closed when the value goes away;
/// disable the interrupts on the device first (``VFIODevice/disableInterrupts(_:fileID:line:)``), as
/// ``VFIODevice`` does when it closes.
public struct InterruptVectors: ~Copyable, Sendable {
    /// The kind the vectors belong to.
    public let kind: PCIInterruptKind
    /// One eventfd per vector, in vector order.
    public var eventFileDescriptors: [FileDescriptor] { descriptors.map(FileDescriptor.init(rawValue:)) }
    /// How many vectors are wired (one eventfd each).
    public var count: Int { descriptors.count }
    /// The raw eventfds, for the seam's calls.
    let descriptors: [Int32]
    let system: any SystemInterface
    /// The system as the ioctl catalogue calls it.
    package let seam: IOCTLSeam

    let logger: Logger

    init(kind: PCIInterruptKind, eventFileDescriptors: [Int32], system: any SystemInterface, logger: Logger) {
        self.kind = kind
        self.descriptors = eventFileDescriptors
        self.system = system
        seam = IOCTLSeam(system)
        self.logger = logger
    }

    deinit {
        for fd in descriptors {
            do { try system.close(fd) } catch {
                logger.debug("closing an interrupt eventfd failed", metadata: ["fd": "\(fd)", "error": "\(error)"])
            }
        }
    }

    /// The interrupts that arrived on `vector` since the last call (0 when none), without
    /// waiting: what a poll-mode driver checks.
    public func takePending(vector: Int = 0) throws(IOMMUError) -> UInt64 {
        try Self.takePending(descriptors[vector], vector: vector, system: system)
    }

    static func takePending(_ fd: Int32, vector: Int, system: any SystemInterface) throws(IOMMUError) -> UInt64 {
        var value: UInt64 = 0
        do {
            _ = unsafe try withUnsafeMutableBytes(of: &value) { (bytes) throws(Errno) -> Int in
                unsafe try system.read(fd, into: bytes)
            }
            return value
        } catch {
            if error == .wouldBlock { return 0 }
            var context = IOMMUErrorContext(fileDescriptor: fd)
            context.interruptVector = vector
            throw IOMMUError(.read, error, context)
        }
    }

    /// Waits up to `timeout` seconds for an interrupt on `vector` (`nil`: until one comes),
    /// blocking in `poll(2)` on its eventfd rather than spinning; returns how many arrived,
    /// or 0 on timeout.
    public func wait(vector: Int = 0, timeout: Double?) throws(IOMMUError) -> UInt64 {
        try Self.wait(descriptors[vector], vector: vector, timeout: timeout, system: system)
    }

    static func wait(_ fd: Int32, vector: Int, timeout: Double?, system: any SystemInterface) throws(IOMMUError) -> UInt64 {
        let nanoseconds = timeout.map { UInt64(max(0, $0) * 1e9) }
        let deadline = nanoseconds.map { system.monotonicNanoseconds() &+ $0 }
        while true {
            let pending = try takePending(fd, vector: vector, system: system)
            if pending > 0 { return pending }
            var left: UInt64?
            if let deadline {
                let now = system.monotonicNanoseconds()
                guard now < deadline else { return 0 }
                left = deadline - now
            }
            // Readable means the counter is non-zero; another reader may still take it first,
            // hence the loop.
            let ready: [Int]
            do throws(Errno) { ready = try system.waitReadable([fd], timeoutNanoseconds: left) } catch {
                var context = IOMMUErrorContext(fileDescriptor: fd)
                context.interruptVector = vector
                throw IOMMUError(.read, error, context)
            }
            if ready.isEmpty { return try takePending(fd, vector: vector, system: system) }
        }
    }

    /// Suspends until an interrupt arrives on `vector` and returns how many arrived: the
    /// async form of ``wait(vector:timeout:)``. The blocking wait runs on a thread of its own,
    /// so no task of the cooperative pool is held.
    public func next(vector: Int = 0) async throws(IOMMUError) -> UInt64 {
        let (fd, system) = (descriptors[vector], system)
        let outcome: Result<UInt64, IOMMUError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(IOMMUError) in
                    try Self.wait(fd, vector: vector, timeout: nil, system: system)
                })
            }
            thread.start()
        }
        return try outcome.get()
    }
}

extension VFIODevice {
    /// `VFIO_DEVICE_GET_IRQ_INFO` for one interrupt kind.
    public func interruptInfo(_ kind: PCIInterruptKind, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> VFIOInterruptInfo {
        let command = try naming { () throws(IOMMUError) in
            try VFIODeviceIOCTL.getIRQInfo(seam, fd, index: kind.rawValue, fileID: fileID, line: line)
        }
        return VFIOInterruptInfo(kind: kind, flags: command.flags, count: command.count)
    }

    /// Wires `count` vectors of `kind` to fresh eventfds (`VFIO_DEVICE_SET_IRQS` with
    /// `DATA_EVENTFD | ACTION_TRIGGER`), which enables them on the device.
    ///
    /// - Throws: `EINVAL` when the device offers fewer vectors; the eventfds made so far
    ///   are closed again.
    public func enableInterrupts(
        _ kind: PCIInterruptKind, count: Int = 1, fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> InterruptVectors {
        precondition(count >= 1, "enable at least one vector")
        var descriptors: [Int32] = []
        do throws(IOMMUError) {
            for _ in 0..<count {
                do { descriptors.append(try system.eventfd(initialValue: 0, flags: Int32(EFD_NONBLOCK | EFD_CLOEXEC))) } catch {
                    throw IOMMUError(.eventfd, error, IOMMUErrorContext(path: path), fileID: fileID, line: line)
                }
            }
            try setInterruptTriggers(kind, descriptors, fileID: fileID, line: line)
        } catch {
            for fd in descriptors { try? system.close(fd) }
            throw error
        }
        return InterruptVectors(kind: kind, eventFileDescriptors: descriptors, system: system, logger: logger)
    }

    /// Enables the first kind in `preference` the device offers, with up to `count`
    /// vectors: MSI-X, then MSI, then INTx (one vector), as DPDK and SPDK choose.
    public func enableInterrupts(
        preferring preference: [PCIInterruptKind] = [.msix, .msi, .intx], count: Int = 1,
        fileID: StaticString = #fileID, line: Int = #line
    ) throws(IOMMUError) -> InterruptVectors {
        for kind in preference {
            let info = try interruptInfo(kind, fileID: fileID, line: line)
            guard info.count > 0, info.signalsEventFD else { continue }
            return try enableInterrupts(kind, count: min(count, Int(info.count)), fileID: fileID, line: line)
        }
        throw IOMMUError(.vfioDeviceSetIRQs, .operationNotSupportedByDevice, IOMMUErrorContext(path: path), fileID: fileID, line: line)
    }

    /// Disables every vector of `kind` (`DATA_NONE | ACTION_TRIGGER` with count 0).
    public func disableInterrupts(_ kind: PCIInterruptKind, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try naming { () throws(IOMMUError) in
            unsafe try VFIODeviceIOCTL.setIRQs(seam, fd, index: kind.rawValue, flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                        start: 0, count: 0, data: UnsafeRawBufferPointer(start: nil, count: 0), fileID: fileID, line: line)
        }
    }

    /// Unmasks INTx after it was handled (the kernel masks it on delivery).
    public func unmaskINTx(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try naming { () throws(IOMMUError) in
            unsafe try VFIODeviceIOCTL.setIRQs(seam, fd, index: PCIInterruptKind.intx.rawValue, flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                        start: 0, count: 1, data: UnsafeRawBufferPointer(start: nil, count: 0), fileID: fileID, line: line)
        }
    }

    private func setInterruptTriggers(_ kind: PCIInterruptKind, _ descriptors: [Int32], fileID: StaticString, line: Int) throws(IOMMUError) {
        let outcome = unsafe descriptors.withUnsafeBytes { data in
            Result { () throws(IOMMUError) in
                try naming { () throws(IOMMUError) in
                    unsafe try VFIODeviceIOCTL.setIRQs(seam, fd, index: kind.rawValue, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                                start: 0, count: UInt32(descriptors.count), data: data, fileID: fileID, line: line)
                }
            }
        }
        try outcome.get()
    }
}
