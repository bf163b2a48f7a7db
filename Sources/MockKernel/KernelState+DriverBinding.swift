import SystemPackage

// The PCI core's driver attributes (drivers/pci/pci-driver.c, drivers/base/bus.c):
// driver_override, <driver>/unbind, <driver>/bind and drivers_probe.
extension KernelState {
    /// Handles a write to a PCI driver attribute; `false` when `path` is not one.
    mutating func writePCIAttribute(_ path: String, _ bytes: [UInt8]) throws(Errno) -> Bool {
        var text = String(decoding: bytes, as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        let devices = "/sys/bus/pci/devices/"
        if path.hasPrefix(devices), path.hasSuffix("/driver_override") {
            guard configuration.files[path] != nil else { throw .noSuchFileOrDirectory }
            configuration.files[path] = Array(((text.isEmpty ? "(null)" : text) + "\n").utf8)
            return true
        }
        if path.hasPrefix(devices), path.hasSuffix("/driver/unbind") {
            let address = String(path.dropFirst(devices.count).prefix { $0 != "/" })
            guard let index = configuration.pciDevices.firstIndex(where: { $0.address == address }),
                  configuration.pciDevices[index].driver != nil else { throw .noSuchFileOrDirectory }
            guard text == address else { throw .operationNotSupportedByDevice }
            // vfio-pci waits for its users to let go; the model refuses instead.
            if vfio.deviceFiles.values.contains(where: { $0.deviceIndex == index }) { throw .resourceBusy }
            configuration.setDriver(nil, ofDeviceAt: index)
            return true
        }
        if path == "/sys/bus/pci/drivers_probe" {
            guard let index = configuration.pciDevices.firstIndex(where: { $0.address == text }) else { throw .operationNotSupportedByDevice }
            guard configuration.pciDevices[index].driver == nil else { return true }
            let overrideText = configuration.files["/sys/bus/pci/devices/\(text)/driver_override"].map { String(decoding: $0, as: UTF8.self) } ?? ""
            let override = overrideText.trimmingCharacters(in: "\n")
            let driver = override.isEmpty || override == "(null)" ? configuration.pciDevices[index].hostDriver : override
            if let driver { configuration.setDriver(driver, ofDeviceAt: index) }
            return true
        }
        if path.hasPrefix("/sys/bus/pci/drivers/"), path.hasSuffix("/bind") {
            let driver = String(path.dropFirst("/sys/bus/pci/drivers/".count).prefix { $0 != "/" })
            guard let index = configuration.pciDevices.firstIndex(where: { $0.address == text }) else { throw .operationNotSupportedByDevice }
            guard configuration.pciDevices[index].driver == nil else { throw .resourceBusy }
            configuration.setDriver(driver, ofDeviceAt: index)
            return true
        }
        return false
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = self
        while text.last == set { text.removeLast() }
        while text.first == set { text.removeFirst() }
        return text
    }
}
