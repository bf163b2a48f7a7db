import NVMe
import Testing

/// The command failure `body` ends with (`NVMeError.commandFailed`), for a test to check its
/// status; `nil`, with an issue recorded, when `body` succeeds or throws anything else.
func nvmeCommandFailure(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> Void) -> (opcode: UInt8, status: NVMeStatus)? {
    do {
        try body()
    } catch NVMeError.commandFailed(let opcode, let status) {
        return (opcode, status)
    } catch {
        Issue.record("\(what): \(error)", sourceLocation: sourceLocation)
        return nil
    }
    Issue.record("\(what) succeeded", sourceLocation: sourceLocation)
    return nil
}
