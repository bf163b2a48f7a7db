import IOMMUFD
import SystemPackage

/// What the VFIO layer knows about its own failures: the meaning and the fix for the VFIO
/// ioctls and nodes an operator meets first (group viability, a device on its kernel driver,
/// a device claimed twice, interrupt remapping, type1's limits). The core's
/// `IOMMUError.explanation` returns it (from `IOMMUErrorContext.advice`) for every error
/// the VFIO layer throws.
extension IOMMUError {
    /// This error with the VFIO layer's advice attached, when it has some.
    func advised() -> IOMMUError {
        guard let advice = vfioAdvice else { return self }
        var error = self
        error.context.advice = advice
        return error
    }

    private var vfioAdvice: IOMMUErrorExplanation? {
        switch (operation, errno) {
        case (.vfioGroupGetStatus, .notPermitted), (.vfioGroupSetContainer, .notPermitted):
            let group = context.objectID.map { "\($0)" } ?? "N"
            return .init(
                meaning: "IOMMU group \(group) is not viable: a device in it is still bound to a host driver, and a group is only safe to give away whole.",
                fix: "bind every device in /sys/kernel/iommu_groups/\(group)/devices to vfio-pci (`iommufd-probe bind <address>`), or unbind them from their drivers.")
        case (.open, .resourceBusy):
            return .init(meaning: "\(context.path ?? "the node") is already open: a legacy group opens once, and not while one of its devices is bound through its cdev.",
                         fix: "close the other user (another process, or this one's cdev binding) first.")
        case (.listDirectory, .noSuchFileOrDirectory) where context.path?.hasSuffix("/vfio-dev") == true:
            let device = context.pciAddress ?? "the device"
            let bound = context.driver.map { "it is bound to \($0)" } ?? "it is bound to no driver"
            return .init(
                meaning: "\(device) has no VFIO device node: \(bound), not vfio-pci (or the kernel lacks CONFIG_VFIO_DEVICE_CDEV).",
                fix: "bind it to vfio-pci: `iommufd-probe bind \(context.pciAddress ?? "<address>")` (or driverctl set-override \(context.pciAddress ?? "<address>") vfio-pci).")
        case (.vfioDeviceBindIOMMUFD, .invalidArgument):
            return .init(
                meaning: "the device is already claimed: it is bound to an iommufd through another descriptor (this process or another one), and a device binds once.",
                fix: "close the other user first; `iommufd-probe --device <address>` lists the processes holding it (D8).")
        case (.vfioIOMMUMapDMA, .fileExists):
            return .init(meaning: "the IOVA range overlaps an existing mapping of this container (type1 never replaces one).", fix: "unmap it first, or pick a free IOVA.")
        case (.vfioIOMMUUnmapDMA, .invalidArgument):
            return .init(meaning: "the range cuts through a mapping (type1v2 never splits one), or is not aligned to the IOMMU page size.",
                         fix: "unmap whole mappings, exactly as they were mapped.")
        case (.vfioDeviceBindIOMMUFD, .resourceBusy):
            return .init(meaning: "the device's IOMMU group is open through the legacy /dev/vfio/<group> path.", fix: "close the group (and its container) first, or use the legacy path for this device too.")
        case (.vfioDeviceBindIOMMUFD, .notPermitted):
            return .init(meaning: "the kernel refuses to give DMA ownership without interrupt remapping (or a no-IOMMU device needs CAP_SYS_RAWIO).",
                         fix: "enable interrupt remapping (intel-iommu with intremap, or AMD IOMMU), or as a last resort set allow_unsafe_interrupts.")
        case (.vfioIOMMUMapDMA, .noSpace):
            return .init(meaning: "the container reached vfio_iommu_type1's dma_entry_limit (65535 mappings by default).",
                         fix: "map larger regions (one per pool, not per buffer), or raise /sys/module/vfio_iommu_type1/parameters/dma_entry_limit.")
        case (.vfioDeviceReset, .invalidArgument):
            return .init(meaning: "the device has no function reset method (no FLR, PM or bus reset).", fix: "reinitialise the device through its own registers instead.")
        case (.vfioIOMMUMapDMA, .noMemory):
            let limit = context.memlockLimit.map { "\($0) bytes (\($0 / 1024) KiB)" } ?? "unknown"
            return .init(
                meaning: "pinning the pages would exceed RLIMIT_MEMLOCK (currently \(limit)); type1 charges every mapped page to the process.",
                fix: "raise the limit: `ulimit -l unlimited`, `LimitMEMLOCK=infinity` in the systemd unit, a `memlock` line in /etc/security/limits.conf, or grant CAP_IPC_LOCK.")
        default:
            return nil
        }
    }
}

/// Runs `call` and attaches the VFIO layer's advice to its error.
func advising<Value>(_ call: () throws(IOMMUError) -> Value) throws(IOMMUError) -> Value {
    do {
        return try call()
    } catch {
        throw error.advised()
    }
}
