import IOMMUFDSystem

extension KernelState {
    /// `/proc/self/status` as the modelled process would read it (unless the configuration
    /// supplies the file itself): its pid, `VmPin` (`mm->pinned_vm`: every iommufd pin) and
    /// `VmLck` (`mm->locked_vm`: type1's pins and iommufd's in per-process mode), in kB, and `CapEff` from the configured capabilities
    /// (CAP_IPC_LOCK 14, CAP_SYS_RAWIO 17, CAP_SYS_RESOURCE 24). The library reads
    /// `CapEff` before it pins (a CAP_IPC_LOCK process is not held to RLIMIT_MEMLOCK), so a
    /// model without this file refused what Linux grants.
    func processStatus() -> [UInt8] {
        var capabilities: UInt64 = 0
        if configuration.hasIPCLock { capabilities |= 1 << 14 }
        if configuration.hasSysRawIO { capabilities |= 1 << 17 }
        if configuration.hasSysResource { capabilities |= 1 << 24 }
        let hex = String(capabilities, radix: 16)
        let text = "Name:\tmock\nPid:\t\(configuration.processID)\nVmLck:\t\(mmLockedPages * pageSize / 1024) kB\n"
            + "VmPin:\t\(pinnedVMPages * pageSize / 1024) kB\nCapEff:\t\(String(repeating: "0", count: 16 - hex.count) + hex)\n"
        return Array(text.utf8)
    }
}
