import CIOMMUFD
import IOMMUFD
import SystemPackage
import VFIO

// Scenario verbs for VFIO devices through their cdev: cdev, bind, attach, detach, region, bar_map, bar_unmap,
// irq, reset, close_device. The VM lane's devices and the mock's presets sit at the same
// addresses (edu 0000:00:02.0, e1000e 0000:00:03.0, nvme 0000:00:04.0).
extension ScenarioExecutor {
    /// `cdev NAME BDF`: opens the function's VFIO cdev (`/dev/vfio/devices/vfioN`), unbound.
    func openCdev(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("cdev NAME BDF") }
        let address = try PCIAddress(parsing: step.words[1])
        let path = try VFIODevice.cdevPath(of: address, system: session.system)
        let fd = try session.system.open(path, flags: O_RDWR, mode: 0)
        if let previous = session.devices[step.words[0]] { try? session.system.close(previous) }
        session.devices[step.words[0]] = fd
        return Outcome(outputs: [:])
    }

    /// `bind NAME [in=CONTEXT]`: `VFIO_DEVICE_BIND_IOMMUFD`; the device id is bound to NAME
    /// in that context and output as `id`.
    func bindDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("bind NAME") }
        let context = try session.context(step)
        let id = try VFIODeviceIOCTL.bind(session.seam, try session.device(step.words[0]), iommufd: context, token: 0,
                                          fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }

    /// `attach NAME PT [pasid=N]`: `VFIO_DEVICE_ATTACH_IOMMUFD_PT` to an IOAS or HWPT; the page table
    /// the device is attached to is bound to `NAME.hwpt` and output as `hwpt`.
    func attachDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("attach NAME PT [pasid=N]") }
        let pasid = try step.arguments["pasid"].map { UInt32(truncatingIfNeeded: try session.number($0)) }
        let hwpt = try VFIODeviceIOCTL.attach(session.seam, try session.device(step.words[0]), pageTable: try session.objectID(step.words[1]),
                                              pasid: pasid, fileID: #fileID, line: step.line)
        if pasid == nil { session.bind(step.words[0] + ".hwpt", id: hwpt, context: step.arguments["in"] ?? ScenarioSession.defaultContext) }
        return Outcome(outputs: ["hwpt": "\(hwpt)"])
    }

    /// `detach NAME [pasid=N]`: `VFIO_DEVICE_DETACH_IOMMUFD_PT` of the RID or of one PASID.
    func detachDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("detach NAME [pasid=N]") }
        let pasid = try step.arguments["pasid"].map { UInt32(truncatingIfNeeded: try session.number($0)) }
        try VFIODeviceIOCTL.detach(session.seam, try session.device(step.words[0]), pasid: pasid, fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `region NAME INDEX`: `VFIO_DEVICE_GET_REGION_INFO`; outputs `flags` and `size`.
    func regionInfo(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("region NAME INDEX") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let info = try VFIODeviceIOCTL.getRegionInfo(session.seam, try session.device(step.words[0]),
                                                     index: UInt32(try session.number(step.words[1])), into: buffer,
                                                     fileID: #fileID, line: step.line)
        return Outcome(outputs: ["flags": ScenarioSession.hex(UInt64(info.flags)), "size": ScenarioSession.hex(info.size)])
    }

    /// `irq NAME INDEX`: `VFIO_DEVICE_GET_IRQ_INFO`; outputs `flags` and `count`.
    func interruptInfo(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("irq NAME INDEX") }
        let info = try VFIODeviceIOCTL.getIRQInfo(session.seam, try session.device(step.words[0]),
                                                  index: UInt32(try session.number(step.words[1])), fileID: #fileID, line: step.line)
        return Outcome(outputs: ["flags": ScenarioSession.hex(UInt64(info.flags)), "count": "\(info.count)"])
    }

    /// `reset NAME`: `VFIO_DEVICE_RESET`.
    func resetDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("reset NAME") }
        try VFIODeviceIOCTL.reset(session.seam, try session.device(step.words[0]), fileID: #fileID, line: step.line)
        return Outcome(outputs: [:])
    }

    /// `close_device NAME`: closes the device descriptor (unbinding it).
    func closeDevice(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1, let fd = session.devices.removeValue(forKey: step.words[0]) else { throw session.fail("close_device NAME") }
        try session.system.close(fd)
        return Outcome(outputs: [:])
    }

    /// `bar_map NAME DEVICE INDEX [length=] [offset=] [private]`: `mmap` of region INDEX
    /// (vfio-pci's offset: the index above bit 40) read-write, shared unless `private`;
    /// the mapping is a buffer named NAME. `length` defaults to a page.
    func mapBAR(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("bar_map NAME DEVICE INDEX") }
        let fd = try session.device(step.words[1])
        let index = try session.number(step.words[2])
        let length = Int(try session.argument(step, "length", default: 4096))
        let offset = Int64(bitPattern: index << 40 | (try session.argument(step, "offset", default: 0)))
        let base = try session.system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE,
                                           flags: step.has("private") ? MAP_PRIVATE : MAP_SHARED, fd: fd, offset: offset)
        session.buffers[step.words[0]] = UnsafeMutableRawBufferPointer(start: base, count: length)
        session.liveMappings.append((Int(bitPattern: base), length))
        return Outcome(outputs: [:])
    }

    /// `bar_unmap NAME`: `munmap` of a BAR mapping made by `bar_map`.
    func unmapBAR(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first, let buffer = session.buffers.removeValue(forKey: name) else { throw session.fail("bar_unmap NAME") }
        try session.system.munmap(buffer.baseAddress!, length: buffer.count)
        session.forgetMapping(start: Int(bitPattern: buffer.baseAddress!), length: buffer.count)
        return Outcome(outputs: [:])
    }
}
