import IOMMUFD
import MockKernel
import Scenarios
import Testing

/// The mock side of the VM lane's "unbound device cdev" test (HardwareTests): the same
/// probe, the kernel's answers.
@Suite("an unbound device cdev on MockKernel")
struct UnboundCdevTests {
    @Test("before VFIO_DEVICE_BIND_IOMMUFD every request, known or not, is EINVAL, as on 7.3 (vfio_main.c:1377-1382)")
    func unboundCdevRefusesEverything() throws {
        let answers = try UnboundCdevProbe.answers(edu, system: pciMachine())
        #expect(answers == UnboundCdevProbe.expected)
    }
}
