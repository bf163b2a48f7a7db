public import IOMMUFD
import SystemPackage

/// Issues one VFIO ioctl whose argument is a command struct (lent for the call only) and
/// turns a failure into an ``IOMMUError`` naming the operation. Shared by the device,
/// group and container descriptors.
func performVFIOCommand<Command>(
    _ system: any SystemInterface, _ fileDescriptor: Int32, _ request: UInt, _ command: inout Command,
    _ operation: IOMMUOperation, _ context: @autoclosure () -> IOMMUErrorContext, fileID: String, line: Int
) throws(IOMMUError) {
    do {
        _ = try withUnsafeMutableBytes(of: &command) { (bytes) throws(Errno) -> Int32 in
            try system.ioctl(fileDescriptor, request, bytes.baseAddress)
        }
    } catch {
        throw IOMMUError(operation, error, context(), fileID: fileID, line: line)
    }
}
