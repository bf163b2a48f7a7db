import Scenarios
import Testing

extension HardwareSuite {
    /// IO page faults served in user space, and the vIOMMU's objects, on the kernel
    /// selftest's mock IOMMU: on this kernel and on MockKernel, line by line.
    @Suite("Hardware: fault queues and the vIOMMU's objects on the selftest IOMMU, kernel and mock",
           .enabled(if: Hardware.hasSelftest, Hardware.selftestReason))
    struct FaultAndVIOMMUObjectTests {
        @Test("a fault queue served through the typed API: map the faulting page and answer SUCCESS, a failing handler answers INVALID, a replace answers what was read; the mock agrees")
        func faultServingAgrees() throws {
            try expectKernelAndMockAgree(FaultServingProbe.lines, linuxAnswer: FaultServingProbe.linuxAnswer)
        }

        @Test("vDEVICE, vEVENTQ (typed events, the lost record), invalidation through the vDEVICE, a HW queue pinning its page; the mock agrees")
        func viommuObjectsAgree() throws {
            try expectKernelAndMockAgree(VIOMMUObjectsProbe.lines, linuxAnswer: VIOMMUObjectsProbe.linuxAnswer)
        }
    }
}
