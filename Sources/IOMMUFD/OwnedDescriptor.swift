import Synchronization
import SystemPackage

/// A descriptor a handle owns (a fault queue's, a vEVENTQ's, a dma-buf's): closed exactly
/// once, by ``close()`` or at the latest when it goes, and waited on through the system.
package final class OwnedDescriptor: Sendable {
    /// The raw descriptor.
    package let fd: Int32
    private let system: any SystemInterface
    private let closed = Atomic<Bool>(false)

    /// Takes ownership of `fd`.
    package init(_ fd: Int32, system: any SystemInterface) {
        self.fd = fd
        self.system = system
    }

    deinit {
        try? close()
    }

    /// Closes the descriptor unless it is closed already.
    package func close() throws(Errno) {
        guard closed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        try system.close(fd)
    }

    /// Waits until the descriptor is readable, at most `timeout` seconds (`nil`: no limit,
    /// 0: only look); returns whether it is.
    package func waitReadable(timeout: Double?) throws(Errno) -> Bool {
        !(try system.waitReadable([fd], timeoutNanoseconds: timeout.map { UInt64(max(0, $0) * 1e9) })).isEmpty
    }
}
