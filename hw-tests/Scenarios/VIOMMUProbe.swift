import CIOMMUFD
@_spi(Selftest) import IOMMUFD
import SystemPackage

/// A vIOMMU on the selftest mock IOMMU through the typed API, in the steps of the kernel's
/// `iommufd_viommu` fixture that need no vDEVICE (tools/testing/selftests/iommu/iommufd.c):
/// the parent it needs, its data echoed back with an mmap region, a nested HWPT on it and
/// its IOTLB, vIOMMU-level invalidation, and the references that make destroys EBUSY. The
/// same function runs on the kernel (the VM lane) and on MockKernel.
public enum VIOMMUProbe {
    /// What Linux 7.3 answered in the VM lane.
    public static let linuxAnswer = [
        "vIOMMU on a HWPT that is no nesting parent: EINVAL",
        "vIOMMU of another type: EOPNOTSUPP",
        "vIOMMU with data: out 0xbeef, a region of 0x2000 bytes at offset 0x1000",
        "a second vIOMMU on the same parent: offset 0x3000",
        "nested HWPT on the vIOMMU: IOTLB 0xbadbeef",
        "a device on it without a vDEVICE: ENOENT",
        "nested invalidation: 1",
        "vIOMMU probe with no entries: 0",
        "vIOMMU takes its own format, not SMMUv3 commands: true false",
        "vIOMMU invalidation of cache 0 of vdev 0: EINVAL handled 0",
        "destroy the vIOMMU under a nested HWPT: EBUSY",
        "destroy the parent under a vIOMMU: EBUSY",
        "destroy in order: ok",
    ]

    /// The lines through `system` (a kernel with the selftest, or MockKernel).
    public static func lines(system: any SystemInterface) throws -> [String] {
        try ProbeOutcome.withSelftestDevice(system: system) { iommufd, ioas, device in try lines(iommufd, ioas, device) }
    }

    static func lines(_ iommufd: IOMMUFD, _ ioas: IOAS, _ device: SelftestMockDevice) throws -> [String] {
        var lines: [String] = []
        let outcome = ProbeOutcome.of
        let invalidation = ProbeOutcome.invalidation
        func hex(_ value: some BinaryInteger) -> String { "0x" + String(value, radix: 16) }
        let plain = try ioas.allocateHWPT(for: device.deviceID)
        lines.append("vIOMMU on a HWPT that is no nesting parent: " + outcome { () throws(IOMMUError) in
            _ = try plain.allocateVIOMMU(for: device.deviceID, type: .selftest)
        })
        let parent = try ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent])
        lines.append("vIOMMU of another type: " + outcome { () throws(IOMMUError) in
            _ = try parent.allocateVIOMMU(for: device.deviceID, type: .other(0xdead))
        })
        let (viommu, answer) = try parent.allocateVIOMMU(for: device.deviceID, data: SelftestVIOMMUData(inData: 0xbeef))
        lines.append("vIOMMU with data: out \(hex(answer.outData)), a region of \(hex(answer.mmapLength)) bytes at offset \(hex(answer.mmapOffset))")
        let (second, secondAnswer) = try parent.allocateVIOMMU(for: device.deviceID, data: SelftestVIOMMUData(inData: 1))
        lines.append("a second vIOMMU on the same parent: offset \(hex(secondAnswer.mmapOffset))")
        try second.destroy()
        let nested = try viommu.allocateNested(for: device.deviceID, data: SelftestNestedTable())
        let iotlb = (try? iommufd.selftestCheckIOTLB(nested.id, iotlbID: 3, equals: IOMMU_TEST_IOTLB_DEFAULT)) != nil ? "0xbadbeef" : "other"
        lines.append("nested HWPT on the vIOMMU: IOTLB \(iotlb)")
        lines.append("a device on it without a vDEVICE: " + outcome { () throws(IOMMUError) in
            try iommufd.selftestReplace(device.selftestID, with: nested.id.rawValue)
        })
        lines.append("nested invalidation: " + invalidation { () throws(IOMMUError) in try nested.invalidate([SelftestInvalidation.all]) })
        lines.append("vIOMMU probe with no entries: " + invalidation { () throws(IOMMUError) in try viommu.invalidate([SelftestVIOMMUInvalidation]()) })
        lines.append("vIOMMU takes its own format, not SMMUv3 commands: "
                     + "\(viommu.acceptsInvalidations(of: SelftestVIOMMUInvalidation.self)) \(viommu.acceptsInvalidations(of: SMMUv3Command.self))")
        lines.append("vIOMMU invalidation of cache 0 of vdev 0: " + invalidation { () throws(IOMMUError) in
            try viommu.invalidate([SelftestVIOMMUInvalidation(vdevID: 0, cacheID: 0)])
        })
        lines.append("destroy the vIOMMU under a nested HWPT: " + outcome { () throws(IOMMUError) in try iommufd.destroy(viommu.id) })
        lines.append("destroy the parent under a vIOMMU: " + outcome { () throws(IOMMUError) in try iommufd.destroy(parent.id) })
        lines.append("destroy in order: " + outcome { () throws(IOMMUError) in
            try nested.destroy()
            try viommu.destroy()
            try parent.destroy()
            try plain.destroy()
        })
        return lines
    }
}
