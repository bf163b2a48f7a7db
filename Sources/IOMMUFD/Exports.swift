// The seam and the uAPI vocabulary (SystemInterface, LinuxSystem, IOMMUOperation, IOVA)
// are part of the typed layer's API: a user of IOMMUFD gets them with it.
@_exported public import IOMMUFDSystem
