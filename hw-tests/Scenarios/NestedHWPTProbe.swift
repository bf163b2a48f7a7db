import CIOMMUFD
import SystemPackage
@_spi(Selftest) import IOMMUFD

/// Nested HWPTs on the selftest mock IOMMU through the typed API, in the steps of the
/// kernel's own `iommufd_ioas.alloc_hwpt_nested` (tools/testing/selftests/iommu/iommufd.c):
/// a nesting parent, nested HWPTs with the selftest data and their four-entry mock IOTLB,
/// typed invalidation arrays (the handled count also with an error), the references that
/// make destroys EBUSY, and a mock device replaced across them. The same function runs on
/// the kernel (the VM lane) and on MockKernel, so the two can be compared line by line.
public enum NestedHWPTProbe {
    /// What Linux 7.3 answered in the VM lane.
    public static let linuxAnswer = [
        "nested on a HWPT that is no nesting parent: EINVAL",
        "nested with the nesting-parent flag: EOPNOTSUPP",
        "two nested HWPTs: ok",
        "IOTLBs start as 0xbadbeef: ok",
        "nested on a nested HWPT: EINVAL",
        "destroy the parent: EBUSY",
        "probe with no entries: accepted",
        "probe a paging HWPT: EINVAL",
        "invalidate the parent: EINVAL handled 0",
        "invalidate iotlb 4: EINVAL handled 0",
        "invalidate [0, unknown flags]: EOPNOTSUPP handled 1",
        "iotlb after: 0x0 0xbadbeef 0xbadbeef 0xbadbeef",
        "invalidate [1, 2, 3]: 3",
        "iotlb after: 0x0 0x0 0x0 0x0",
        "invalidate all on the second: 1",
        "device on the first nested: ok",
        "destroy the first nested: EBUSY",
        "device on the second nested: ok",
        "destroy the first nested: ok",
        "device back on the parent, then the IOAS: ok",
        "check the iotlb of a paging HWPT: ENOENT",
        "destroy the second nested, then the parent: ok",
    ]

    /// The lines through `system` (a kernel with the selftest, or MockKernel).
    public static func lines(system: any SystemInterface) throws -> [String] {
        try ProbeOutcome.withSelftestDevice(system: system) { iommufd, ioas, device in try lines(iommufd, ioas, device) }
    }

    static func lines(_ iommufd: IOMMUFD, _ ioas: IOAS, _ device: SelftestMockDevice) throws -> [String] {
        var lines: [String] = []
        let outcome = ProbeOutcome.of
        let invalidation = ProbeOutcome.invalidation
        func iotlb(_ nested: NestedHWPT) -> String {
            (0..<MOCK_NESTED_DOMAIN_IOTLB_NUM).map { (entry: UInt32) -> String in
                for value in [IOMMU_TEST_IOTLB_DEFAULT, 0] where (try? iommufd.selftestCheckIOTLB(nested.id, iotlbID: entry, equals: value)) != nil {
                    return "0x" + String(value, radix: 16)
                }
                return "other"
            }.joined(separator: " ")
        }
        let data = SelftestNestedTable()
        let plain = try ioas.allocateHWPT(for: device.deviceID)
        lines.append("nested on a HWPT that is no nesting parent: " + outcome { () throws(IOMMUError) in
            _ = try plain.allocateNested(for: device.deviceID, data: data)
        })
        let parent = try ioas.allocateHWPT(for: device.deviceID, flags: [.nestParent])
        lines.append("nested with the nesting-parent flag: " + outcome { () throws(IOMMUError) in
            _ = try parent.allocateNested(for: device.deviceID, data: data, flags: NestedHWPTFlags(rawValue: IOMMU_HWPT_ALLOC_NEST_PARENT))
        })
        let first = try parent.allocateNested(for: device.deviceID, data: data)
        let second = try parent.allocateNested(for: device.deviceID, data: data)
        lines.append("two nested HWPTs: ok")
        lines.append("IOTLBs start as 0xbadbeef: " + (iotlb(first) == iotlb(second) && iotlb(first) == "0xbadbeef 0xbadbeef 0xbadbeef 0xbadbeef" ? "ok" : iotlb(first)))
        lines.append("nested on a nested HWPT: " + outcome { () throws(IOMMUError) in
            // The typed API has no way to ask this (a NestedHWPT cannot be a parent); the catalogue can.
            var layout = data.kernelLayout
            _ = unsafe try withUnsafeBytes(of: &layout) { (bytes) throws(IOMMUError) -> UInt32 in
                unsafe try IOMMUFDIOCTL.hwptAlloc(iommufd.seam, iommufd.fileDescriptor.rawValue, device: device.deviceID.rawValue, pageTable: first.id.rawValue,
                                                  flags: 0, dataType: IOMMU_HWPT_DATA_SELFTEST, data: bytes, faultID: 0, fileID: #fileID, line: #line)
            }
        })
        lines.append("destroy the parent: " + outcome { () throws(IOMMUError) in try iommufd.destroy(parent.id) })
        lines.append("probe with no entries: " + (first.acceptsInvalidations(of: SelftestInvalidation.self) ? "accepted" : "refused"))
        lines.append("probe a paging HWPT: " + outcome { () throws(IOMMUError) in
            _ = try iommufd.invalidateCaches(of: parent.id.rawValue, [SelftestInvalidation](), fileID: #fileID, line: #line)
        })
        lines.append("invalidate the parent: " + invalidation { () throws(IOMMUError) in
            try iommufd.invalidateCaches(of: parent.id.rawValue, [SelftestInvalidation(iotlbID: 0)], fileID: #fileID, line: #line)
        })
        lines.append("invalidate iotlb 4: " + invalidation { () throws(IOMMUError) in try first.invalidate([SelftestInvalidation(iotlbID: 4)]) })
        lines.append("invalidate [0, unknown flags]: " + invalidation { () throws(IOMMUError) in
            try first.invalidate([SelftestInvalidation(iotlbID: 0), SelftestInvalidation(flags: 0xffff_ffff, iotlbID: 1)])
        })
        lines.append("iotlb after: " + iotlb(first))
        lines.append("invalidate [1, 2, 3]: " + invalidation { () throws(IOMMUError) in
            try first.invalidate([SelftestInvalidation(iotlbID: 1), SelftestInvalidation(iotlbID: 2), SelftestInvalidation(iotlbID: 3)])
        })
        lines.append("iotlb after: " + iotlb(first))
        lines.append("invalidate all on the second: " + invalidation { () throws(IOMMUError) in try second.invalidate([SelftestInvalidation.all]) })
        lines.append("device on the first nested: " + outcome { () throws(IOMMUError) in _ = try iommufd.selftestReplace(device.selftestID, with: first.id.rawValue) })
        lines.append("destroy the first nested: " + outcome { () throws(IOMMUError) in try iommufd.destroy(first.id) })
        lines.append("device on the second nested: " + outcome { () throws(IOMMUError) in _ = try iommufd.selftestReplace(device.selftestID, with: second.id.rawValue) })
        lines.append("destroy the first nested: " + outcome { () throws(IOMMUError) in try first.destroy() })
        lines.append("device back on the parent, then the IOAS: " + outcome { () throws(IOMMUError) in
            _ = try iommufd.selftestReplace(device.selftestID, with: parent.id.rawValue)
            _ = try iommufd.selftestReplace(device.selftestID, with: ioas.id.rawValue)
        })
        lines.append("check the iotlb of a paging HWPT: " + outcome { () throws(IOMMUError) in
            try iommufd.selftestCheckIOTLB(parent.id, iotlbID: 0, equals: IOMMU_TEST_IOTLB_DEFAULT)
        })
        lines.append("destroy the second nested, then the parent: " + outcome { () throws(IOMMUError) in
            try second.destroy()
            try parent.destroy()
            try plain.destroy()
        })
        return lines
    }
}
