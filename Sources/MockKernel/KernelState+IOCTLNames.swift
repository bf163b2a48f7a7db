import IOMMUFDSystem

extension KernelState {
    /// The trace (and fault-injection) name of an ioctl: the kernel's name of the command
    /// `request` means on that kind of descriptor, from the toolkit's one descriptor table
    /// (``IOMMUOperation``). VFIO numbers 12-14 mean hot-reset commands on a device and
    /// type1 commands on a container; an unknown request is named by its number.
    func ioctlName(_ request: UInt, on descriptor: OpenDescriptor?) -> String {
        let families: [IOCTLDescriptor.Family]
        switch descriptor {
        case .iommufd?: families = [.iommufd, .selftest]
        case .vfioContainer?: families = [.vfioContainer]
        case .vfioGroup?: families = [.vfioGroup]
        case .vfioDevice?: families = [.vfioDevice]
        default: families = [.iommufd, .selftest, .vfioDevice, .vfioGroup, .vfioContainer]
        }
        for family in families {
            if let operation = IOMMUOperation(request: request, family: family) { return operation.name }
        }
        return "ioctl(0x" + String(request, radix: 16) + ")"
    }
}
