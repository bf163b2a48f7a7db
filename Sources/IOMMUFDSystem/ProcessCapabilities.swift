/// The calling process's effective capabilities, from `CapEff` in `/proc/self/status`
/// (read through the seam, so MockKernel can present any process).
public struct ProcessCapabilities: Sendable, Hashable {
    /// The raw `CapEff` bit mask.
    public var effective: UInt64

    /// Creates the capabilities from a raw `CapEff` mask (bit n is capability n, e.g. bit 14 `CAP_IPC_LOCK`).
    public init(effective: UInt64) { self.effective = effective }

    /// Reads `/proc/self/status`; `nil` when it cannot be read or has no `CapEff` line.
    public init?(system: any SystemInterface = LinuxSystem()) {
        guard let bytes = try? system.readFile("/proc/self/status") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("CapEff:") {
            let digits = line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }
            guard let value = UInt64(digits, radix: 16) else { return nil }
            self.effective = value
            return
        }
        return nil
    }

    /// `CAP_IPC_LOCK` (14): pinned pages are not charged against `RLIMIT_MEMLOCK`.
    public var hasIPCLock: Bool { effective & (1 << 14) != 0 }
    /// `CAP_SYS_RESOURCE` (24): may raise limits and change iommufd's accounting mode.
    public var hasSysResource: Bool { effective & (1 << 24) != 0 }
    /// No capability at all: the process is checked like an ordinary user's.
    public var isUnprivileged: Bool { effective == 0 }
}
