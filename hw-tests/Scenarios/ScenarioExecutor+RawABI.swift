import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// The raw ABI verb: any command number, size and bytes.
extension ScenarioExecutor {
    // MARK: Raw ABI

    /// `raw NR size=N [bytes=M] [null] [tail=V] [u32.OFFSET=V] [u64.OFFSET=V]`: command NR
    /// with a zeroed argument of M bytes (default: size) whose `size` field says N.
    func raw(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let word = step.words.first else { throw session.fail("raw NR size=N") }
        let fd = try session.context(step)
        let number = try session.number(word)
        let request = UInt(IOMMUFD_TYPE_SHIFTED) | UInt(number & 0xff)
        let declared = try session.argument(step, "size")
        let byteCount = Int(try session.argument(step, "bytes", default: max(declared, 4)))
        var bytes = [UInt8](repeating: 0, count: max(byteCount, 4) + 8)
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: declared).littleEndian) { bytes.replaceSubrange(0..<4, with: $0) }
        if let tail = step.arguments["tail"], declared > 0 {
            bytes[Int(declared) - 1] = UInt8(truncatingIfNeeded: try session.number(tail))
        }
        for (key, value) in step.arguments where key.hasPrefix("u32.") || key.hasPrefix("u64.") {
            guard let offset = Int(key.dropFirst(4)) else { throw session.fail("bad field \(key)") }
            let wide = key.hasPrefix("u64.")
            let parsed = try session.number(value)
            if wide {
                withUnsafeBytes(of: parsed.littleEndian) { bytes.replaceSubrange(offset..<offset + 8, with: $0) }
            } else {
                withUnsafeBytes(of: UInt32(truncatingIfNeeded: parsed).littleEndian) { bytes.replaceSubrange(offset..<offset + 4, with: $0) }
            }
        }
        if step.has("null") {
            _ = try IOMMUFDIOCTL.raw(session.seam, fd, request: request, argument: nil)
            return Outcome()
        }
        var errno: Errno?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(Errno) { _ = try IOMMUFDIOCTL.raw(session.seam, fd, request: request, argument: buffer.baseAddress) } catch { errno = error }
        }
        return Outcome(errno: errno)
    }
}

/// `_IO(';', 0)`: the iommufd ioctl type byte in place.
let IOMMUFD_TYPE_SHIFTED: UInt32 = 0x3b << 8
