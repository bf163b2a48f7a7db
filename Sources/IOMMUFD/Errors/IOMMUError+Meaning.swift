import SystemPackage

/// What a failure means and how to fix it, for the cases an operator meets.
public struct IOMMUErrorExplanation: Sendable, Hashable {
    /// What the kernel is telling us.
    public var meaning: String
    /// What to do about it, when there is something to do.
    public var fix: String?

    /// An explanation: what the failure means and, when there is one, the fix.
    public init(meaning: String, fix: String?) {
        self.meaning = meaning
        self.fix = fix
    }
}

extension IOMMUError {
    /// The known meaning of this (operation, errno) pair, following the uAPI documentation
    /// in `include/uapi/linux/iommufd.h` and `Documentation/userspace-api/iommufd.rst`.
    public var explanation: IOMMUErrorExplanation? {
        if let advice = context.advice { return advice }
        switch (operation, errno) {
        case (_, .notPermitted) where context.handleFromBeforeFork:
            return .init(
                meaning: "this handle was made before a fork() and is used in the child; the call was not issued, because the child's inherited descriptors reach the parent's objects and the call would act on them (unmap its DMA, destroy its page tables, reset its device).",
                fix: "in the child, open /dev/iommu and the device again (or exec a new program); a device can be bound to one iommufd at a time, so hand it over explicitly if the child must own it.")
        case (_, .noSuchFileOrDirectory) where context.handleWasDestroyed:
            return .init(
                meaning: "the object was already destroyed through this handle; the call was not issued, because the kernel reuses the lowest free id and \(context.objectID.map { "id \($0)" } ?? "its id") may now name another object.",
                fix: "keep using a handle only until it is destroyed; allocate a new object instead.")
        case (.open, .noSuchFileOrDirectory) where context.path == "/dev/iommu":
            return .init(
                meaning: "/dev/iommu does not exist: this kernel was built without CONFIG_IOMMUFD (Debian's default) or the iommufd module is not loaded.",
                fix: "run `modprobe iommufd`, or boot a kernel with CONFIG_IOMMUFD=y; otherwise use the legacy VFIO type1 backend.")
        case (.open, .permissionDenied), (.open, .notPermitted):
            let path = context.path ?? "the device node"
            return .init(
                meaning: "the current user may not open \(path).",
                fix: "give your user access with a udev rule, e.g. `SUBSYSTEM==\"misc\", KERNEL==\"iommu\", GROUP=\"vfio\", MODE=\"0660\"` in /etc/udev/rules.d/90-iommufd.rules, then `udevadm trigger` and add yourself to the group.")
        case (_, .inappropriateIOCTLForDevice):
            return .init(
                meaning: "this kernel does not implement \(operation.name) (it answered ENOTTY).",
                fix: "use a newer kernel, or avoid the feature; `iommufd-probe` lists the commands this kernel supports.")
        case (.ioasMap, .noMemory), (.ioasMapFile, .noMemory), (.ioasCopy, .noMemory):
            let limit = context.memlockLimit.map { "\($0) bytes (\($0 / 1024) KiB)" } ?? "unknown"
            return .init(
                meaning: "pinning the pages would exceed RLIMIT_MEMLOCK (currently \(limit)).",
                fix: "raise the limit: `ulimit -l unlimited` in the shell, `LimitMEMLOCK=infinity` in the systemd unit, a `memlock` line in /etc/security/limits.conf, or grant CAP_IPC_LOCK (`setcap cap_ipc_lock+ep <binary>`).")
        case (.ioasMap, .fileExists), (.ioasMapFile, .fileExists), (.ioasCopy, .fileExists):
            return .init(meaning: "the fixed IOVA range overlaps an existing mapping.", fix: "unmap it first or let the kernel choose the IOVA.")
        case (.ioasMap, .noSpace), (.ioasMapFile, .noSpace), (.ioasCopy, .noSpace):
            return .init(meaning: "no free IOVA range of that size and alignment is left inside the allowed ranges.", fix: "unmap something, or widen the ranges given to IOMMU_IOAS_ALLOW_IOVAS.")
        case (.ioasMap, .badAddress):
            return .init(meaning: "part of the user memory is not mapped (or is read-only while WRITEABLE was asked).", fix: "map only memory you own, for its whole length.")
        case (_, .overflow):
            return .init(meaning: "an address plus its length wraps past the end of the address space.", fix: nil)
        case (.ioasUnmap, .noSuchFileOrDirectory):
            return .init(meaning: "nothing is mapped there, or the range cuts through a mapping (iommufd never splits one).", fix: "unmap whole mappings, exactly as they were mapped.")
        case (.ioasUnmap, .ioError) where context.reportedLength != nil:
            return .init(meaning: "the kernel unmapped a different number of bytes than the mapping's length.", fix: nil)
        case (_, .addressInUse):
            return .init(meaning: "the IOVA range collides with a reserved range, an allowed range or a misaligned existing mapping.", fix: nil)
        case (.destroy, .resourceBusy):
            return .init(meaning: "the object is still in use (a device or HWPT refers to it).", fix: "detach devices and destroy dependent objects first.")
        case (_, .noSuchFileOrDirectory) where context.objectID != nil:
            return .init(meaning: "no object with that id exists in this iommufd.", fix: nil)
        case (_, .argListTooLong):
            return .init(meaning: "the struct passed is larger than the kernel knows and its unknown tail is not zero.", fix: "clear the fields this kernel does not know, or upgrade the kernel.")
        case (_, .notSupported):
            return .init(meaning: "a flag or reserved field is set that the kernel does not support.", fix: nil)
        case (.option, .notPermitted):
            return .init(meaning: "changing the accounting mode needs CAP_SYS_RESOURCE.", fix: nil)
        default:
            return nil
        }
    }
}
