import CIOMMUFD
import SystemPackage

// The no-IOMMU cdev mode's one iommufd command past its argument checks:
// IOMMU_IOAS_NOIOMMU_GET_PA (ioas.c:378-411, io_pagetable.c:865-941).
extension KernelState {
    /// `iopt_get_phys`: the area holding the IOVA (`ENOENT`), a revoked dma-buf area
    /// (`EINVAL`), the IOAS's storage domain the no-IOMMU software table (`EOPNOTSUPP` with
    /// none, or another IOMMU's); then the address behind the IOVA and how many bytes from it
    /// are contiguous, to the area's end at most and capped by the length asked. The model's
    /// "physical" address is the host memory its fake DMA reaches, contiguous in the area
    /// (the kernel's pages are contiguous only as the allocator left them).
    mutating func noIOMMUPhysicalAddress(_ contextID: Int, _ command: UserCommand) throws(Errno) {
        var cmd = unsafe command.load(iommu_ioas_noiommu_get_pa.self)
        let table = contexts[contextID]!.ioas(cmd.ioas_id)!
        guard let area = table.areas(overlapping: cmd.iova...cmd.iova).first else { throw .noSuchFileOrDirectory }
        if contexts[contextID]!.pages[area.pagesID]?.revoked == true { throw .invalidArgument }
        guard let storage = table.domains.first?.hwptID, contexts[contextID]!.hwptPaging(storage)?.driver == DeviceIOMMU.Driver.none else {
            throw .notSupported
        }
        guard let address = unsafe translate(contextID: contextID, table: table, iova: cmd.iova, length: 1, write: false) else {
            throw .noSuchFileOrDirectory
        }
        cmd.out_phys = UInt64(UInt(bitPattern: address))
        cmd.length = min(cmd.length, area.last - cmd.iova + 1)
        unsafe command.respond(cmd)
    }
}
