import CIOMMUFD
public import IOMMUFD
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension VFIODevice {
    // MARK: PCI configuration space

    /// Reads a little-endian value from PCI configuration space.
    public func readConfiguration<Value: FixedWidthInteger>(_ type: Value.Type, at offset: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) -> Value {
        try seam.requireOwnProcess(.pread, configurationContext(offset), fileID: fileID, line: line)
        let base = try configurationBase(fileID: fileID, line: line)
        var value = Value.zero
        let count: Int
        do {
            count = unsafe try withUnsafeMutableBytes(of: &value) { (bytes) throws(Errno) -> Int in
                unsafe try system.pread(fd, into: bytes, offset: Int64(base + offset))
            }
        } catch {
            throw IOMMUError(.pread, error, configurationContext(offset), fileID: fileID, line: line)
        }
        guard count == MemoryLayout<Value>.size else {
            var context = configurationContext(offset)
            context.length = UInt64(count)
            throw IOMMUError(.pread, .ioError, context, fileID: fileID, line: line)
        }
        return Value(littleEndian: value)
    }

    /// Writes a little-endian value to PCI configuration space.
    public func writeConfiguration<Value: FixedWidthInteger>(_ value: Value, at offset: UInt64, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try seam.requireOwnProcess(.pwrite, configurationContext(offset), fileID: fileID, line: line)
        let base = try configurationBase(fileID: fileID, line: line)
        var littleEndian = value.littleEndian
        let count: Int
        do {
            count = unsafe try withUnsafeBytes(of: &littleEndian) { (bytes) throws(Errno) -> Int in
                unsafe try system.pwrite(fd, from: bytes, offset: Int64(base + offset))
            }
        } catch {
            throw IOMMUError(.pwrite, error, configurationContext(offset), fileID: fileID, line: line)
        }
        guard count == MemoryLayout<Value>.size else {
            var context = configurationContext(offset)
            context.length = UInt64(count)
            throw IOMMUError(.pwrite, .ioError, context, fileID: fileID, line: line)
        }
    }

    private func configurationContext(_ offset: UInt64) -> IOMMUErrorContext {
        var context = IOMMUErrorContext(path: path)
        context.configurationOffset = offset
        return context
    }

    private func configurationBase(fileID: StaticString, line: Int) throws(IOMMUError) -> UInt64 {
        if let configurationOffset { return configurationOffset }
        let offset = try region(VFIO_PCI_CONFIG_REGION_INDEX, fileID: fileID, line: line).offset
        configurationOffset = offset
        return offset
    }

    /// Sets or clears Bus Master Enable (command register bit 2). vfio-pci leaves it
    /// clear: a driver must set it before the device's DMA does anything, and clear it
    /// to quiesce the device before unmapping its buffers.
    public func setBusMaster(_ enabled: Bool, fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        let command = try readConfiguration(UInt16.self, at: PCIConfiguration.command, fileID: fileID, line: line)
        let updated = enabled ? command | PCIConfiguration.commandMemorySpace | PCIConfiguration.commandBusMaster
                              : command & ~PCIConfiguration.commandBusMaster
        if updated != command { try writeConfiguration(updated, at: PCIConfiguration.command, fileID: fileID, line: line) }
        enabledBusMaster = enabled
    }

    /// `VFIO_DEVICE_RESET`: a function-level (or other) reset, when the device offers one.
    public func reset(fileID: StaticString = #fileID, line: Int = #line) throws(IOMMUError) {
        try naming { () throws(IOMMUError) in try VFIODeviceIOCTL.reset(seam, fd, fileID: fileID, line: line) }
    }

    /// Runs one catalogue call and adds the device's path to its error.
    func naming<Value>(_ call: () throws(IOMMUError) -> Value) throws(IOMMUError) -> Value {
        try withErrorPath(path, call)
    }
}

/// Offsets and bits of the standard PCI configuration header.
public enum PCIConfiguration {
    /// Offset of the 16-bit Vendor ID register (0xffff when no function answers).
    public static let vendorID: UInt64 = 0x00
    /// Offset of the 16-bit Device ID register.
    public static let deviceID: UInt64 = 0x02
    /// Offset of the 16-bit Command register.
    public static let command: UInt64 = 0x04
    /// Offset of the 16-bit Status register.
    public static let status: UInt64 = 0x06
    /// Offset of the 32-bit word holding the Revision ID (low byte) and the 24-bit class code above it.
    public static let classRevision: UInt64 = 0x08
    /// Command register bit 1, Memory Space Enable: the function answers accesses to its memory BARs.
    public static let commandMemorySpace: UInt16 = 1 << 1
    /// Command register bit 2, Bus Master Enable: the function may issue DMA (and MSI writes).
    public static let commandBusMaster: UInt16 = 1 << 2
}
