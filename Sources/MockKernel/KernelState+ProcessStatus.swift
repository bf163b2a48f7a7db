import IOMMUFDSystem

extension KernelState {
    /// `/proc/self/status` as the modelled process would read it (unless the configuration
    /// supplies the file itself): its pid, the pages pinned for DMA (`VmPin`: iommufd's
    /// pins, charged to `mm->pinned_vm`) and locked (`VmLck`: type1's, charged to
    /// `mm->locked_vm`), in kB, and `CapEff` from the configured capabilities
    /// (CAP_IPC_LOCK 14, CAP_SYS_RAWIO 17, CAP_SYS_RESOURCE 24). The library reads
    /// `CapEff` before it pins (a CAP_IPC_LOCK process is not held to RLIMIT_MEMLOCK), so a
    /// model without this file refused what Linux grants.
    func processStatus() -> [UInt8] {
        let type1Pages = vfio.containers.values.reduce(UInt64(0)) { total, container in
            container.mappings.values.reduce(total) { $0 + $1.chargedPages }
        }
        let iommufdPages = chargedPages - min(chargedPages, type1Pages)
        var capabilities: UInt64 = 0
        if configuration.hasIPCLock { capabilities |= 1 << 14 }
        if configuration.hasSysRawIO { capabilities |= 1 << 17 }
        if configuration.hasSysResource { capabilities |= 1 << 24 }
        let hex = String(capabilities, radix: 16)
        let text = "Name:\tmock\nPid:\t\(configuration.processID)\nVmLck:\t\(type1Pages * pageSize / 1024) kB\n"
            + "VmPin:\t\(iommufdPages * pageSize / 1024) kB\nCapEff:\t\(String(repeating: "0", count: 16 - hex.count) + hex)\n"
        return Array(text.utf8)
    }
}
