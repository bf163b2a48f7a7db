import IOMMUFDSystem
import MockKernel
import SystemPackage

// Scenario verb for the kernel's configuration: kernel PARAMETER=VALUE.

/// A setting of the kernel a scenario may change: a module parameter the running kernel
/// lets root write, and the MockKernel configuration that models it.
struct KernelKnob {
    /// The parameter's sysfs file on the real kernel.
    let parameterPath: String
    /// The same setting on MockKernel.
    let configure: @Sendable (inout MockKernel.Configuration, UInt64) -> Void

    /// The knobs by the name a scenario uses.
    static let all: [String: KernelKnob] = [
        // vfio_iommu_type1.dma_entry_limit (vfio_iommu_type1.c:59-62): the mappings a
        // container may hold, taken when its IOMMU is set.
        "dma_entry_limit": KernelKnob(parameterPath: "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit",
                                      configure: { $0.type1MappingLimit = UInt32(truncatingIfNeeded: $1) }),
    ]
}

extension ScenarioExecutor {
    /// `kernel NAME=VALUE ...`: sets kernel knobs for the rest of the scenario. On the real
    /// kernel each module parameter is written (its old value is put back when the scenario
    /// ends); on MockKernel the configuration changes. A knob the runner does not know is a
    /// mistake in the scenario.
    func setKernelKnobs(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard !step.arguments.isEmpty else { throw session.fail("kernel NAME=VALUE") }
        for (name, text) in step.arguments.sorted(by: { $0.key < $1.key }) {
            guard let knob = KernelKnob.all[name] else {
                throw session.fail("unknown kernel knob \(name) (known: \(KernelKnob.all.keys.sorted().joined(separator: ", ")))")
            }
            let value = try session.number(text)
            if let mock = session.system as? MockKernel {
                mock.reconfigure { knob.configure(&$0, value) }
            } else {
                if session.restoredParameters[knob.parameterPath] == nil {
                    session.restoredParameters[knob.parameterPath] = try session.system.readFile(knob.parameterPath)
                }
                try session.system.writeFile(knob.parameterPath, Array("\(value)\n".utf8))
            }
        }
        return Outcome()
    }
}
