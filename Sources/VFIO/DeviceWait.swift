import IOMMUFDSystem

/// Polling a device for a state, as drivers wait for a reset to finish, a link to come up or
/// a completion to land: `done` is asked, then asked again every `interval` nanoseconds until
/// it is true or `timeout` nanoseconds have passed (monotonic clock).
public enum DeviceWait {
    /// Whether `done` became true within `timeout` nanoseconds.
    public static func until(timeout: UInt64, interval: UInt64, _ done: () throws -> Bool) rethrows -> Bool {
        let system = LinuxSystem()
        let deadline = system.monotonicNanoseconds() &+ timeout
        while try !done() {
            if system.monotonicNanoseconds() > deadline { return false }
            system.sleep(nanoseconds: interval)
        }
        return true
    }
}
