import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// The raw ABI verb: any command number, size and bytes.
extension ScenarioExecutor {
    // MARK: Raw ABI

    /// `raw NR size=N [bytes=M] [null | arg=V] [tail=V] [u32.OFFSET=V] [u64.OFFSET=V]
    /// [out32=O,O...] [out64=O,...] [fd=O] [ret]`: command NR with a zeroed argument of M bytes
    /// (default: size) whose `size` field says N, or with no pointer (`null`) or an integer
    /// argument (`arg=`). After a successful call, `out32`/`out64` output the fields at those
    /// offsets as `at.O`, `ret` outputs the ioctl's return value, and `fd=O` closes the
    /// descriptor the kernel wrote at offset O (output as `fd` = `valid` when it was one).
    func raw(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let word = step.words.first else { throw session.fail("raw NR size=N") }
        let fd = try session.context(step)
        let number = try session.number(word)
        let request = UInt(IOMMUFD_TYPE_SHIFTED) | UInt(number & 0xff)
        let pointerless = step.has("null") || step.arguments["arg"] != nil
        let declared = try session.argument(step, "size", default: pointerless ? 0 : try session.argument(step, "size"))
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
        var result: Int32 = 0
        if step.has("null") || step.arguments["arg"] != nil {
            let argument = try step.arguments["arg"].map { UnsafeMutableRawPointer(bitPattern: UInt(try session.number($0))) } ?? nil
            result = try IOMMUFDIOCTL.raw(session.seam, fd, request: request, argument: argument)
            return Outcome(outputs: step.has("ret") ? ["ret": "\(result)"] : [:])
        }
        var errno: Errno?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(Errno) { result = try IOMMUFDIOCTL.raw(session.seam, fd, request: request, argument: buffer.baseAddress) } catch { errno = error }
        }
        if let errno { return Outcome(errno: errno) }
        var outputs: [String: String] = step.has("ret") ? ["ret": "\(result)"] : [:]
        func field(_ offset: Int, wide: Bool) -> UInt64 {
            (0..<(wide ? 8 : 4)).reduce(UInt64(0)) { value, index in value | UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        }
        for (key, wide) in [("out32", false), ("out64", true)] {
            for text in (step.arguments[key] ?? "").split(separator: ",") {
                guard let offset = Int(text), offset + (wide ? 8 : 4) <= bytes.count else { throw session.fail("bad \(key) offset \(text)") }
                outputs["at.\(offset)"] = ScenarioSession.hex(field(offset, wide: wide))
            }
        }
        if let text = step.arguments["fd"] {
            guard let offset = Int(text), offset + 4 <= bytes.count else { throw session.fail("bad fd offset \(text)") }
            let descriptor = Int32(truncatingIfNeeded: field(offset, wide: false))
            outputs["fd"] = (try? session.system.close(descriptor)) != nil ? "valid" : "invalid"
        }
        return Outcome(outputs: outputs)
    }
}

/// `_IO(';', 0)`: the iommufd ioctl type byte in place.
let IOMMUFD_TYPE_SHIFTED: UInt32 = 0x3b << 8
