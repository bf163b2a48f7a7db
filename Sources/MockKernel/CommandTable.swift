import CIOMMUFD
import IOMMUFD

/// How the kernel's dispatcher sees one iommufd command (`struct iommufd_ioctl_op`):
/// the size it copies in and the minimum `size` it accepts (`offsetofend` of the
/// last field of the first version of the struct).
struct CommandShape {
    var name: String
    var request: UInt
    var kernelSize: Int
    var minimumSize: Int
}

/// The 7.3 table, indexed by `nr - 0x80`; `IOMMU_TEST_CMD` sits at 0xa0.
let iommufdCommandShapes: [UInt32: CommandShape] = {
    func shape<T>(_ nr: UInt32, _ name: String, _ type: T.Type, minimum: Int) -> (UInt32, CommandShape) {
        (nr, CommandShape(name: name, request: 0x3b00 | UInt(nr), kernelSize: MemoryLayout<T>.size, minimumSize: minimum))
    }
    return Dictionary(uniqueKeysWithValues: [
        shape(0x80, "IOMMU_DESTROY", iommu_destroy.self, minimum: 8),
        shape(0x81, "IOMMU_IOAS_ALLOC", iommu_ioas_alloc.self, minimum: 12),
        shape(0x82, "IOMMU_IOAS_ALLOW_IOVAS", iommu_ioas_allow_iovas.self, minimum: 24),
        shape(0x83, "IOMMU_IOAS_COPY", iommu_ioas_copy.self, minimum: 40),
        shape(0x84, "IOMMU_IOAS_IOVA_RANGES", iommu_ioas_iova_ranges.self, minimum: 32),
        shape(0x85, "IOMMU_IOAS_MAP", iommu_ioas_map.self, minimum: 40),
        shape(0x86, "IOMMU_IOAS_UNMAP", iommu_ioas_unmap.self, minimum: 24),
        shape(0x87, "IOMMU_OPTION", iommu_option.self, minimum: 24),
        shape(0x88, "IOMMU_VFIO_IOAS", iommu_vfio_ioas.self, minimum: 12),
        shape(0x89, "IOMMU_HWPT_ALLOC", iommu_hwpt_alloc.self, minimum: 24),
        shape(0x8a, "IOMMU_GET_HW_INFO", iommu_hw_info.self, minimum: 32),
        shape(0x8b, "IOMMU_HWPT_SET_DIRTY_TRACKING", iommu_hwpt_set_dirty_tracking.self, minimum: 16),
        shape(0x8c, "IOMMU_HWPT_GET_DIRTY_BITMAP", iommu_hwpt_get_dirty_bitmap.self, minimum: 48),
        shape(0x8d, "IOMMU_HWPT_INVALIDATE", iommu_hwpt_invalidate.self, minimum: 32),
        shape(0x8e, "IOMMU_FAULT_QUEUE_ALLOC", iommu_fault_alloc.self, minimum: 16),
        shape(0x8f, "IOMMU_IOAS_MAP_FILE", iommu_ioas_map_file.self, minimum: 40),
        shape(0x90, "IOMMU_VIOMMU_ALLOC", iommu_viommu_alloc.self, minimum: 24),
        shape(0x91, "IOMMU_VDEVICE_ALLOC", iommu_vdevice_alloc.self, minimum: 24),
        shape(0x92, "IOMMU_IOAS_CHANGE_PROCESS", iommu_ioas_change_process.self, minimum: 8),
        shape(0x93, "IOMMU_VEVENTQ_ALLOC", iommu_veventq_alloc.self, minimum: 28),
        shape(0x94, "IOMMU_HW_QUEUE_ALLOC", iommu_hw_queue_alloc.self, minimum: 40),
        shape(0x95, "IOMMU_IOAS_NOIOMMU_GET_PA", iommu_ioas_noiommu_get_pa.self, minimum: 40),
        shape(0xa0, "IOMMU_TEST_CMD", iommu_test_cmd.self, minimum: 68),
    ])
}()

/// The trace name of an ioctl request.
/// VFIO numbers 12-14 mean different commands on a container and on a device.
func ioctlName(_ request: UInt, onContainer: Bool = false) -> String {
    let nr = UInt32(request & 0xff)
    if let shape = iommufdCommandShapes[nr], shape.request == request { return shape.name }
    if request & ~0xff == 0x3b00, nr >= 100, nr < 100 + UInt32(vfioCommandNames.count) {
        let index = Int(nr - 100)
        if onContainer, let name = type1CommandNames[index] { return name }
        return vfioCommandNames[index]
    }
    return "ioctl(0x" + String(request, radix: 16) + ")"
}

/// VFIO_BASE + n, for n = 0...21 (`include/uapi/linux/vfio.h`).
let vfioCommandNames = [
    "VFIO_GET_API_VERSION", "VFIO_CHECK_EXTENSION", "VFIO_SET_IOMMU", "VFIO_GROUP_GET_STATUS",
    "VFIO_GROUP_SET_CONTAINER", "VFIO_GROUP_UNSET_CONTAINER", "VFIO_GROUP_GET_DEVICE_FD", "VFIO_DEVICE_GET_INFO",
    "VFIO_DEVICE_GET_REGION_INFO", "VFIO_DEVICE_GET_IRQ_INFO", "VFIO_DEVICE_SET_IRQS", "VFIO_DEVICE_RESET",
    "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", "VFIO_DEVICE_PCI_HOT_RESET", "VFIO_DEVICE_QUERY_GFX_PLANE",
    "VFIO_DEVICE_GET_GFX_DMABUF", "VFIO_DEVICE_IOEVENTFD", "VFIO_DEVICE_FEATURE", "VFIO_DEVICE_BIND_IOMMUFD",
    "VFIO_DEVICE_ATTACH_IOMMUFD_PT", "VFIO_DEVICE_DETACH_IOMMUFD_PT", "VFIO_MIG_GET_PRECOPY_INFO",
]

/// The container's meaning of the shared numbers.
let type1CommandNames: [Int: String] = [12: "VFIO_IOMMU_GET_INFO", 13: "VFIO_IOMMU_MAP_DMA", 14: "VFIO_IOMMU_UNMAP_DMA", 17: "VFIO_IOMMU_DIRTY_PAGES"]
