import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// The raw ABI verbs: any command number, size and bytes; payloads for what a command points to.
extension ScenarioExecutor {
    // MARK: Raw ABI

    /// `raw NR size=N [on=NAME] [bytes=M] [null | arg=V] [tail=V] [u32.OFFSET=V] [u64.OFFSET=V]
    /// [out32=O,O...] [out64=O,...] [read32=P.O,...] [read64=P.O,...] [fd=O] [ret]`: command
    /// NR (type `;`: iommufd's and VFIO's) on the context, or on the device, group or container
    /// `on` names, with a zeroed argument of M bytes (default: size) whose `size` (VFIO:
    /// `argsz`) field says N, or with
    /// no pointer (`null`) or an integer argument (`arg=`). A field may hold a payload's
    /// address (`u64.24=P`, see `payload`). After the call, also a failed one (the kernel
    /// writes some answers back with an error), `out32`/`out64` output the command's fields
    /// at those offsets as `at.O` and `read32`/`read64` a payload's as `P.O`; after a
    /// successful one, `ret` outputs the ioctl's return value and `fd=O` closes the descriptor
    /// the kernel wrote at offset O (output as `fd` = `valid` when it was one).
    func raw(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let word = step.words.first else { throw session.fail("raw NR size=N") }
        let fd = try step.arguments["on"].map { try session.descriptor(named: $0) } ?? session.context(step)
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
        var outputs: [String: String] = [:]
        func field(_ offset: Int, wide: Bool) -> UInt64 {
            (0..<(wide ? 8 : 4)).reduce(UInt64(0)) { value, index in value | UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        }
        for (key, wide) in [("out32", false), ("out64", true)] {
            for text in (step.arguments[key] ?? "").split(separator: ",") {
                guard let offset = Int(text), offset + (wide ? 8 : 4) <= bytes.count else { throw session.fail("bad \(key) offset \(text)") }
                outputs["at.\(offset)"] = ScenarioSession.hex(field(offset, wide: wide))
            }
        }
        for (key, width) in [("read32", 4), ("read64", 8)] {
            for text in (step.arguments[key] ?? "").split(separator: ",") {
                let parts = text.split(separator: ".")
                guard parts.count == 2, let payload = session.buffers[String(parts[0])], let offset = Int(parts[1]),
                      offset >= 0, offset + width <= payload.count else { throw session.fail("bad \(key) field \(text) (PAYLOAD.OFFSET)") }
                let value = (0..<width).reduce(UInt64(0)) { value, index in value | UInt64(payload[offset + index]) << (8 * UInt64(index)) }
                outputs[String(text)] = ScenarioSession.hex(value)
            }
        }
        if let errno { return Outcome(errno: errno, outputs: outputs) }
        if step.has("ret") { outputs["ret"] = "\(result)" }
        if let text = step.arguments["fd"] {
            guard let offset = Int(text), offset + 4 <= bytes.count else { throw session.fail("bad fd offset \(text)") }
            let descriptor = Int32(truncatingIfNeeded: field(offset, wide: false))
            outputs["fd"] = (try? session.system.close(descriptor)) != nil ? "valid" : "invalid"
        }
        return Outcome(outputs: outputs)
    }
}

extension ScenarioExecutor {
    /// `payload NAME SIZE [fill=B] [u8.O=V] [u16.O=V] [u32.O=V] [u64.O=V]`: user memory a
    /// command points to (nested data, an array of entries, a bitmap, a buffer the kernel
    /// fills): SIZE bytes of anonymous memory, every byte `fill` (default 0), then the given
    /// fields. Its name is its address in numbers (`u64.24=P`); `read32`/`read64` of `raw`
    /// read it back. `payload` again on an existing name rewrites its fields.
    func payload(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("payload NAME SIZE") }
        let buffer: UnsafeMutableRawBufferPointer
        if let existing = session.buffers[name], step.words.count == 1 {
            buffer = existing
        } else {
            guard step.words.count >= 2 else { throw session.fail("payload NAME SIZE") }
            let size = Int(try session.number(step.words[1]))
            guard size > 0 else { throw session.fail("a payload has at least one byte") }
            let base = try session.system.mmap(address: nil, length: size, protection: PROT_READ | PROT_WRITE,
                                               flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
            buffer = UnsafeMutableRawBufferPointer(start: base, count: size)
            session.buffers[name] = buffer
            session.liveMappings.append((Int(bitPattern: base), size))
            let fill = UInt8(truncatingIfNeeded: try session.argument(step, "fill", default: 0))
            for index in 0..<size { buffer[index] = fill }
        }
        for (key, value) in step.arguments where key != "fill" {
            let parts = key.split(separator: ".")
            let widths = ["u8": 1, "u16": 2, "u32": 4, "u64": 8]
            guard parts.count == 2, let width = widths[String(parts[0])], let offset = Int(parts[1]),
                  offset >= 0, offset + width <= buffer.count else { throw session.fail("bad payload field \(key) (u8/u16/u32/u64.OFFSET inside \(name))") }
            let parsed = try session.number(value)
            for index in 0..<width { buffer[offset + index] = UInt8(truncatingIfNeeded: parsed >> (8 * UInt64(index))) }
        }
        return Outcome()
    }
}

/// `_IO(';', 0)`: the iommufd ioctl type byte in place.
let IOMMUFD_TYPE_SHIFTED: UInt32 = 0x3b << 8
