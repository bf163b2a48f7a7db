import Foundation
import CIOMMUFD
import IOMMUFD
import MockKernel
import SystemPackage
import Testing
import VFIO
#if canImport(Glibc)
import Glibc
#endif

/// A machine with QEMU's three test devices bound to vfio-pci, each in its own group.
func pciMachine(_ change: (inout MockKernel.Configuration) -> Void = { _ in }) -> MockKernel {
    var configuration = MockKernel.Configuration()
    configuration.addPCIDevice(.edu())
    configuration.addPCIDevice(.e1000e())
    configuration.addPCIDevice(.nvme())
    change(&configuration)
    return MockKernel(configuration: configuration)
}

let edu = try! PCIAddress(parsing: "0000:00:02.0")
let e1000e = try! PCIAddress(parsing: "0000:00:03.0")
let nvme = try! PCIAddress(parsing: "0000:00:04.0")

/// Runs `body` on a fresh machine and checks that every descriptor, pin and mapping is
/// released afterwards.
func withPCIMachine(
    _ change: (inout MockKernel.Configuration) -> Void = { _ in },
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: (MockKernel) throws -> Void
) throws {
    let kernel = pciMachine(change)
    try body(kernel)
    #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)", sourceLocation: sourceLocation)
    #expect(kernel.descriptorsWithoutCloseOnExec == 0, sourceLocation: sourceLocation)
}

/// The same driver code over both VFIO paths, like the kernel's FIXTURE_VARIANT over IOMMU modes.
@Suite("VFIO device layer on MockKernel, through the cdev and the legacy path")
struct VFIODeviceTests {
    static let paths: [VFIODevice.Path] = [.iommufdCdev, .legacyGroup]

    @Test("the path is chosen like libvfn: iommufd when /dev/iommu and /dev/vfio/devices exist; IOMMUFD_FORCE_LEGACY=1 forces legacy")
    func pathChoice() {
        let kernel = pciMachine()
        #expect(VFIOPCIDevice.resolve(.automatic, system: kernel, environment: [:]) == .iommufdCdev)
        #expect(VFIOPCIDevice.resolve(.automatic, system: kernel, environment: ["IOMMUFD_FORCE_LEGACY": "1"]) == .legacyGroup)
        #expect(VFIOPCIDevice.resolve(.only(.iommufdCdev), system: kernel, environment: ["IOMMUFD_FORCE_LEGACY": "1"]) == .iommufdCdev)
        let debian = pciMachine { $0.iommuDevice = .absent }
        #expect(VFIOPCIDevice.resolve(.automatic, system: debian, environment: [:]) == .legacyGroup)
        #expect(kernel.leaks.isEmpty && debian.leaks.isEmpty)
    }

    @Test("sysfs discovery: identity, driver, group, cdev, NUMA, reset; a member on a host driver blocks the group")
    func discovery() throws {
        let kernel = pciMachine { $0.addPCIDevice(.init(address: "0000:00:05.0", vendorID: 0x8086, deviceID: 0x100e, iommuGroup: 3, driver: "e1000")) }
        let function = try PCIFunction(e1000e, system: kernel)
        #expect(function.vendorID == 0x8086 && function.deviceID == 0x10d3 && function.classCode == 0x020000)
        #expect(function.driver == "vfio-pci" && function.isOnVFIO && function.driverOverride == nil)
        #expect(function.iommuGroup == 3 && function.vfioCdev == "vfio1" && function.cdevPath == "/dev/vfio/devices/vfio1")
        #expect(function.numaNode == nil && function.resetMethods == ["pm"] && function.physicalFunction == nil)
        let group = function.groupMembers(system: kernel)
        #expect(group.members.map(\.address.description) == ["0000:00:03.0", "0000:00:05.0"] && !group.viable)
        #expect(function.groupBlockers(system: kernel).map(\.driver) == ["e1000"])
        #expect(errnoOf { try PCIFunction(PCIAddress(parsing: "0000:00:1f.0"), system: kernel) } == .noSuchFileOrDirectory)
    }

    @Test("config space and BAR0 read the same through either path", arguments: paths)
    func configurationAndBAR(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            #expect(owned.path == path)
            let info = try owned.device.info()
            #expect(info.isPCI && !info.canReset && info.regionCount == 9 && info.interruptCount == 5)
            #expect(try owned.device.readConfiguration(UInt16.self, at: PCIConfiguration.vendorID) == 0x1234)
            #expect(try owned.device.readConfiguration(UInt16.self, at: PCIConfiguration.deviceID) == 0x11e8)
            let bar0 = try owned.device.region(0)
            #expect(bar0.size == 0x10_0000 && bar0.isMappable)
            let registers = try owned.device.map(bar0)
            registers.write32(0xfeed_beef, at: 0x20)
            let seen = try #require(kernel.barMemory("0000:00:02.0", bar: 0)).load(fromByteOffset: 0x20, as: UInt32.self)
            #expect(seen == 0xfeed_beef)
            _ = consume registers
        }
    }

    @Test("a DMA round trip: the device reads and writes host memory only while mapped and bus-mastering", arguments: paths)
    func dmaRoundTrip(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            let memory = try kernel.mmap(address: nil, length: 8192, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let buffer = UnsafeMutableRawBufferPointer(start: memory, count: 8192)
            for index in 0..<4096 { buffer[index] = UInt8(truncatingIfNeeded: index &* 13) }
            let mapping = try owned.addressSpace.map(UnsafeRawBufferPointer(buffer), at: IOVA(0x10_0000))
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x10_0000, length: 16) == nil, "DMA without bus master")
            try owned.device.setBusMaster(true)
            let read = try #require(kernel.pciDeviceRead("0000:00:02.0", iova: 0x10_0000, length: 4096))
            #expect(read == Array(buffer[0..<4096]))
            #expect(kernel.pciDeviceWrite("0000:00:02.0", iova: 0x10_1000, bytes: Array(read.reversed())))
            #expect(Array(buffer[4096..<8192]) == Array(read.reversed()))
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x20_0000, length: 16) == nil, "unmapped IOVA reached memory")
            try owned.device.setBusMaster(false)
            try owned.addressSpace.unmap(mapping)
            try owned.device.setBusMaster(true)
            #expect(kernel.pciDeviceRead("0000:00:02.0", iova: 0x10_0000, length: 16) == nil, "stale IOVA reached memory")
            try kernel.munmap(memory, length: 8192)
        }
    }

    @Test("IOVA ranges leave out the MSI window on both paths, up to QEMU's 39-bit intel-iommu (as the VM lane's kernel reports)", arguments: paths)
    func ranges(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            let ranges = try owned.addressSpace.iovaRanges()
            #expect(ranges.ranges.contains(IOVARange(start: IOVA(0), last: IOVA(0xfedf_ffff))))
            #expect(ranges.ranges.contains(IOVARange(start: IOVA(0xfef0_0000), last: IOVA((1 << 39) - 1))))
            #expect(ranges.alignment == 4096)
            let memory = try kernel.mmap(address: nil, length: 4096, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let error = errnoOf { try owned.addressSpace.map(userAddress: UInt64(UInt(bitPattern: memory)), length: 4096, at: IOVA(0xfee0_0000)) }
            #expect(error == .invalidArgument, "both iopt_check_iova and vfio_iommu_iova_dma_valid refuse a reserved IOVA")
            try kernel.munmap(memory, length: 4096)
        }
    }

    @Test("interrupts: MSI-X first, then MSI; a raised vector signals only its eventfd", arguments: paths)
    func interrupts(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let nic = try VFIOPCIDevice(e1000e, path: .only(path), system: kernel)
            #expect(try nic.device.interruptInfo(.msix).count == 5)
            try nic.device.setBusMaster(true)
            let vectors = try nic.device.enableInterrupts(count: 5)
            #expect(vectors.kind == .msix && vectors.eventFileDescriptors.count == 5)
            #expect(kernel.raiseInterrupt("0000:00:03.0", vector: 2))
            #expect(try vectors.takePending(vector: 2) == 1)
            #expect(try vectors.takePending(vector: 0) == 0)
            // Only one kind at a time.
            #expect(errnoOf { try nic.device.enableInterrupts(.msi) } == .invalidArgument)
            try nic.device.disableInterrupts(.msix)
            #expect(!kernel.raiseInterrupt("0000:00:03.0", vector: 2))

            let teaching = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            try teaching.device.setBusMaster(true)
            let msi = try teaching.device.enableInterrupts()
            #expect(msi.kind == .msi)
            #expect(kernel.raiseInterrupt("0000:00:02.0"))
            #expect(try msi.wait(timeout: 1) == 1)
        }
    }

    @Test("MSI needs bus mastering: without it the interrupt never arrives", arguments: paths)
    func msiNeedsBusMaster(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            let msi = try owned.device.enableInterrupts(.msi)
            #expect(!kernel.raiseInterrupt("0000:00:02.0"))
            #expect(try msi.takePending() == 0)
        }
    }

    @Test("the MSI-X BAR reports the MSIX_MAPPABLE capability; other BARs have no chain; e1000e's I/O BAR2 is not mappable, its ROM read-only, its config space 4 KiB")
    func regionCapabilities() throws {
        try withPCIMachine { kernel in
            let nic = try VFIOPCIDevice(e1000e, system: kernel, environment: [:])
            #expect(try nic.device.region(3).capabilities.msixMappable)
            #expect(try !nic.device.region(0).capabilities.msixMappable)
            let io = try nic.device.region(2)
            #expect(io.size == 0x20 && io.isReadable && io.isWritable && !io.isMappable)
            let rom = try nic.device.region(VFIO_PCI_ROM_REGION_INDEX)
            #expect(rom.size == 0x40000 && rom.isReadable && !rom.isWritable)
            #expect(try nic.device.region(VFIO_PCI_CONFIG_REGION_INDEX).size == 4096)
        }
    }

    @Test("reset: EINVAL without a reset method; with one the command register reads as before (the reset restores the function's state; scenario M14 on 7.3.4)", arguments: paths)
    func reset(path: VFIODevice.Path) throws {
        try withPCIMachine { kernel in
            let teaching = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
            #expect(errnoOf { try teaching.device.reset() } == .invalidArgument)
            let storage = try VFIOPCIDevice(nvme, path: .only(path), system: kernel)
            #expect(try storage.device.info().canReset)
            try storage.device.setBusMaster(true)
            let before = try storage.device.readConfiguration(UInt16.self, at: PCIConfiguration.command)
            try storage.device.reset()
            #expect(try storage.device.readConfiguration(UInt16.self, at: PCIConfiguration.command) == before)
        }
    }

    @Test("hot reset: a root-bus function has none (ENODEV); functions behind a bridge list each other")
    func hotReset() throws {
        try withPCIMachine({ configuration in
            configuration.addPCIDevice(.init(address: "0000:01:00.0", vendorID: 0x8086, deviceID: 0x1533, iommuGroup: 7))
            configuration.addPCIDevice(.init(address: "0000:01:00.1", vendorID: 0x8086, deviceID: 0x1533, iommuGroup: 8))
        }) { kernel in
            let teaching = try VFIOPCIDevice(edu, system: kernel, environment: [:])
            #expect(errnoOf { try teaching.device.hotResetDependencies() } == .operationNotSupportedByDevice)
            let port = try VFIOPCIDevice(PCIAddress(parsing: "0000:01:00.0"), system: kernel, environment: [:])
            let dependencies = try port.device.hotResetDependencies()
            #expect(dependencies.map(\.address.description) == ["0000:01:00.0", "0000:01:00.1"])
            #expect(dependencies[0].isOwned && !dependencies[1].isOwned)
        }
    }

    @Test("every failure while opening releases what it took, and only failures of optional reads are survived", arguments: paths)
    func failureSweep(path: VFIODevice.Path) throws {
        // The open sequence, from a run with nothing failing: the calls that open the device.
        let clean = pciMachine()
        do { _ = try VFIOPCIDevice(edu, path: .only(path), system: clean) }
        let calls = clean.trace.map(\.name).prefix { $0 != "close" }
        #expect(calls.count >= 4)
        var survived: [String] = []
        for n in 1...calls.count {
            let kernel = pciMachine()
            kernel.failNthCall(n, with: .ioError)
            do throws(IOMMUError) {
                let owned = try VFIOPCIDevice(edu, path: .only(path), system: kernel)
                _ = owned
                survived.append(calls[n - 1])
            } catch {
                #expect(error.errno == .ioError, "call \(n) (\(calls[n - 1])): \(error)")
            }
            #expect(kernel.leaks.isEmpty, "call \(n) (\(calls[n - 1])) failing leaked \(kernel.leaks)")
        }
        // Reads of sysfs attributes that only inform (the NUMA node, the reset method, the
        // driver link) may fail without failing the open; nothing else may.
        #expect(survived.allSatisfy { ["readFile", "readlink", "opendir"].contains($0) }, "survived failures of: \(survived)")
    }
}

/// The legacy container and group rules, as drivers/vfio/{container,group,vfio_iommu_type1}.c answer.
@Suite("Legacy type1 rules on MockKernel")
struct LegacyType1Tests {
    @Test("a container maps nothing before a group joined and SET_IOMMU ran (EINVAL)")
    func mapBeforeSetIOMMU() throws {
        try withPCIMachine { kernel in
            let container = try VFIOContainer(system: kernel)
            #expect(try container.supports(VFIO_TYPE1v2_IOMMU) && container.supports(VFIO_UNMAP_ALL))
            #expect(try !container.supports(VFIO_SPAPR_TCE_IOMMU))
            #expect(errnoOf { try container.map(userAddress: 0x1000, length: 4096, at: IOVA(0)) } == .invalidArgument)
            // SET_IOMMU with no group in the container.
            #expect(errnoOf { try kernel.ioctl(container.fileDescriptor.rawValue, VFIO_SET_IOMMU, UnsafeMutableRawPointer(bitPattern: VFIO_TYPE1v2_IOMMU)) } == .invalidArgument)
        }
    }

    @Test("a group with a member bound to a host driver is not viable (EPERM), and says which fix applies")
    func nonViableGroup() throws {
        try withPCIMachine({ configuration in
            configuration.addPCIDevice(.init(address: "0000:00:05.0", vendorID: 0x8086, deviceID: 0x100e, iommuGroup: 2, driver: "e1000"))
        }) { kernel in
            let container = try VFIOContainer(system: kernel)
            do throws(IOMMUError) {
                _ = try VFIOGroup(number: 2, container: container)
                Issue.record("a non-viable group joined a container")
            } catch {
                #expect(error.errno == .notPermitted && error.operation == .vfioGroupGetStatus)
                #expect(error.explanation?.fix?.contains("vfio-pci") == true)
            }
            kernel.setDriver("vfio-pci", of: "0000:00:05.0")
            let group = try VFIOGroup(number: 2, container: container)
            #expect(container.isIOMMUSet && container.groupNumbers == [2])
            _ = group
        }
    }

    @Test("a group opens once (EBUSY), and a bound cdev and the group exclude each other (EBUSY)")
    func exclusivity() throws {
        try withPCIMachine { kernel in
            let container = try VFIOContainer(system: kernel)
            let group = try VFIOGroup(number: 2, container: container)
            #expect(errnoOf { try kernel.open("/dev/vfio/2", flags: O_RDWR | O_CLOEXEC, mode: 0) } == .resourceBusy)
            let iommufd = try IOMMUFD(system: kernel)
            let cdev = try VFIODevice(edu, system: kernel)
            #expect(errnoOf { try cdev.bind(to: iommufd) } == .resourceBusy)
            _ = group
        }
        try withPCIMachine { kernel in
            let iommufd = try IOMMUFD(system: kernel)
            let cdev = try VFIODevice(edu, system: kernel)
            try cdev.bind(to: iommufd)
            #expect(errnoOf { try kernel.open("/dev/vfio/2", flags: O_RDWR | O_CLOEXEC, mode: 0) } == .resourceBusy)
        }
    }

    @Test("type1v2 map and unmap: EEXIST on overlap, EINVAL for a cut, 0 bytes (ENOENT here) for nothing, ENOSPC at dma_entry_limit")
    func mapUnmapRules() throws {
        try withPCIMachine({ $0.type1MappingLimit = 3 }) { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.legacyGroup), system: kernel)
            guard case .type1(let container) = owned.addressSpace else { Issue.record("not a container"); return }
            let memory = try kernel.mmap(address: nil, length: 16384, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let base = UInt64(UInt(bitPattern: memory))
            let big = try container.map(userAddress: base, length: 8192, at: IOVA(0x10_0000))
            #expect(errnoOf { try container.map(userAddress: base, length: 4096, at: IOVA(0x10_1000)) } == .fileExists)
            #expect(errnoOf { try container.unmap(iova: IOVA(0x10_1000), length: 4096) } == .invalidArgument)
            #expect(errnoOf { try container.unmap(DMAMapping(iova: IOVA(0x40_0000), length: 4096)) } == .noSuchFileOrDirectory)
            #expect(errnoOf { try container.map(userAddress: base + 1, length: 4096, at: IOVA(0x20_0000)) } == .invalidArgument)
            #expect(try container.info().availableMappings == 2)
            _ = try container.map(userAddress: base + 8192, length: 4096, at: IOVA(0x20_0000))
            _ = try container.map(userAddress: base + 12288, length: 4096, at: IOVA(0x30_0000))
            #expect(errnoOf { try container.map(userAddress: base, length: 4096, at: IOVA(0x50_0000)) } == .noSpace)
            try container.unmap(big)
            #expect(try container.unmapAll() == 8192)
            try kernel.munmap(memory, length: 16384)
        }
    }

    @Test("type1 pins are charged to RLIMIT_MEMLOCK: ENOMEM with the limit in the error, released on unmap")
    func memlock() throws {
        try withPCIMachine({ $0.memlockLimit = 8192 }) { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.legacyGroup), system: kernel)
            let memory = try kernel.mmap(address: nil, length: 16384, protection: PROT_READ | PROT_WRITE,
                                         flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            let base = UInt64(UInt(bitPattern: memory))
            let first = try owned.addressSpace.map(userAddress: base, length: 8192, at: IOVA(0x10_0000))
            do throws(IOMMUError) {
                _ = try owned.addressSpace.map(userAddress: base + 8192, length: 4096, at: IOVA(0x20_0000))
                Issue.record("mapped past the memlock limit")
            } catch {
                #expect(error.errno == .noMemory && error.context.memlockLimit == 8192)
            }
            #expect(kernel.leaks.pinnedPages == 2)
            try owned.addressSpace.unmap(first)
            #expect(kernel.leaks.pinnedPages == 0)
            try kernel.munmap(memory, length: 16384)
        }
    }

    @Test("an unbound cdev answers nothing but BIND (EINVAL), as the kernel's get_info_without_bind_fails checks")
    func unboundCdev() throws {
        try withPCIMachine { kernel in
            let cdev = try VFIODevice(edu, system: kernel)
            #expect(errnoOf { try cdev.info() } == .invalidArgument)
            #expect(errnoOf { try cdev.readConfiguration(UInt16.self, at: 0) } == .invalidArgument)
        }
    }
}

/// Interrupt waits block on the eventfd (poll in the seam) instead of sleeping in steps.
@Suite("interrupt waits block on the eventfd")
struct InterruptWaitTests {
    @Test("a wait blocks in one poll until the interrupt arrives from another thread", .timeLimit(.minutes(1)))
    func waitWakesOnInterrupt() throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            try owned.device.setBusMaster(true)
            let vectors = try owned.device.enableInterrupts(.msi)
            kernel.clearTrace()
            let raiser = Thread {
                Thread.sleep(forTimeInterval: 0.05)
                _ = kernel.raiseInterrupt("0000:00:02.0")
            }
            raiser.start()
            let started = Date()
            #expect(try vectors.wait(timeout: 30) == 1)
            #expect(Date().timeIntervalSince(started) < 10, "woken by the interrupt, not by the timeout")
            let polls = kernel.trace.filter { $0.name == "poll" }.count
            #expect(polls >= 1 && polls <= 2, "blocked in poll instead of spinning: \(polls) polls")
            try owned.device.disableInterrupts(.msi)
            try owned.device.setBusMaster(false)
        }
    }

    @Test("a wait with nothing pending returns 0 after its timeout, having slept in poll", .timeLimit(.minutes(1)))
    func waitTimesOut() throws {
        try withPCIMachine { kernel in
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            let vectors = try owned.device.enableInterrupts(.msi)
            kernel.clearTrace()
            let started = Date()
            #expect(try vectors.wait(timeout: 0.2) == 0)
            #expect(Date().timeIntervalSince(started) >= 0.15)
            #expect(kernel.trace.filter { $0.name == "poll" }.count == 1)
            try owned.device.disableInterrupts(.msi)
        }
    }

    @Test("the async form suspends until the interrupt arrives", .timeLimit(.minutes(1)))
    func asyncNext() async throws {
        let kernel = pciMachine()
        do {
            let owned = try VFIOPCIDevice(edu, path: .only(.iommufdCdev), system: kernel)
            try owned.device.setBusMaster(true)
            let vectors = try owned.device.enableInterrupts(.msi)
            async let count = vectors.next()
            try await Task.sleep(nanoseconds: 50_000_000)
            #expect(kernel.raiseInterrupt("0000:00:02.0"))
            #expect(try await count == 1)
            try owned.device.disableInterrupts(.msi)
            try owned.device.setBusMaster(false)
        }
        #expect(kernel.leaks.isEmpty, "leaked: \(kernel.leaks)")
    }

    @Test("poll on a descriptor the model does not know is EBADF, as POLLNVAL is on Linux")
    func pollUnknownDescriptor() {
        let kernel = MockKernel()
        #expect(throws: Errno.badFileDescriptor) { try kernel.waitReadable([77], timeoutNanoseconds: 0) }
        #expect(throws: Errno.badFileDescriptor) { try LinuxSystem().waitReadable([9999], timeoutNanoseconds: 0) }
    }
}
