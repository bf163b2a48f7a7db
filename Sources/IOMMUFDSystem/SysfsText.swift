/// The one way the toolkit reads a small text file such as a sysfs attribute: the bytes as
/// UTF-8, without the trailing newline, spaces or NULs the kernel pads attributes with.
public enum SysfsText {
    /// `bytes` decoded, trailing `\n`, ` ` and `\0` removed.
    public static func trimmed(_ bytes: [UInt8]) -> String {
        var end = bytes.endIndex
        while end > bytes.startIndex, [0x0a, 0x20, 0x00].contains(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
