import CIOMMUFD
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// The errors a user meets first carry a sentence and a fix, not a bare errno.
@Suite("error hints for the first things a user hits")
struct ErrorHintTests {
    @Test("a device on its kernel driver: ENOENT names the device, its driver and the bind command")
    func notBoundToVFIO() throws {
        try withPCIMachine({ $0.addPCIDevice(.init(address: "0000:00:05.0", vendorID: 0x8086, deviceID: 0x100e, iommuGroup: 5, driver: "e1000")) }) { kernel in
            let address = try PCIAddress(parsing: "0000:00:05.0")
            do throws(IOMMUError) {
                _ = try VFIOPCIDevice(address, path: .only(.iommufdCdev), system: kernel)
                Issue.record("claiming a device on e1000 succeeded")
            } catch {
                #expect(error.errno == .noSuchFileOrDirectory)
                #expect(error.context.pciAddress == "0000:00:05.0" && error.context.driver == "e1000")
                let explanation = try #require(error.explanation)
                #expect(explanation.meaning.contains("bound to e1000, not vfio-pci"))
                #expect(explanation.fix?.contains("iommufd-probe bind 0000:00:05.0") == true)
            }
        }
    }

    @Test("a device claimed twice: the second bind's EINVAL says it is already claimed, advice the VFIO layer attaches (the core has none of its own)")
    func alreadyClaimed() throws {
        #expect(IOMMUError(.vfioDeviceBindIOMMUFD, .invalidArgument).explanation == nil, "the core has no VFIO advice of its own")
        try withPCIMachine { kernel in
            let first = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            do throws(IOMMUError) {
                _ = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
                Issue.record("a second claim succeeded")
            } catch {
                #expect(error.errno == .invalidArgument && error.operation == .vfioDeviceBindIOMMUFD)
                #expect(error.explanation?.meaning.contains("already claimed") == true)
                #expect(error.context.advice != nil && error.explanation == error.context.advice)
            }
            withExtendedLifetime(first) {}
        }
    }

    @Test("type1's twins of the iommufd cases: an overlapping map (EEXIST) and an unmap that cuts a mapping (EINVAL)")
    func type1Twins() throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.legacyGroup), system: kernel)
            let memory = try kernel.mmap(address: nil, length: 16384, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let buffer = UnsafeRawBufferPointer(start: memory, count: 16384)
            let mapping = try owned.addressSpace.map(buffer, at: IOVA(0x10_0000))
            do throws(IOMMUError) {
                _ = try owned.addressSpace.map(UnsafeRawBufferPointer(rebasing: buffer[0..<4096]), at: IOVA(0x10_2000))
                Issue.record("an overlapping type1 map succeeded")
            } catch {
                #expect(error.errno == .fileExists && error.explanation?.meaning.contains("overlaps an existing mapping") == true)
            }
            guard case .type1(let container) = owned.addressSpace else { Issue.record("not type1"); return }
            do throws(IOMMUError) {
                _ = try container.unmap(iova: IOVA(0x10_1000), length: 4096)
                Issue.record("a cutting type1 unmap succeeded")
            } catch {
                #expect(error.errno == .invalidArgument && error.explanation?.meaning.contains("cuts through a mapping") == true)
            }
            try owned.addressSpace.unmap(mapping)
            try kernel.munmap(memory, length: 16384)
        }
    }

    @Test("config-space errors carry the config offset in its own field, not in iova")
    func honestConfigurationOffset() throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            do throws(IOMMUError) {
                _ = try owned.device.readConfiguration(UInt32.self, at: 0x10_0000)
                Issue.record("a read far past config space succeeded")
            } catch {
                #expect(error.context.configurationOffset == 0x10_0000 && error.context.iova == nil)
            }
        }
    }
}
