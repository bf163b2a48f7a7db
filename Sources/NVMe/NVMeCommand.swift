/// A 64-byte NVMe submission queue entry (NVMe Base Specification 2.0, 4.2), built field by
/// field and stored little-endian into the queue.
public struct NVMeCommand: Sendable, Hashable {
    /// The opcode (CDW0 bits 7:0).
    public var opcode: UInt8
    /// The command identifier the completion carries back (CDW0 bits 31:16).
    public var commandID: UInt16 = 0
    /// The namespace (NSID).
    public var namespace: UInt32 = 0
    /// The first PRP entry (data pointer).
    public var prp1: UInt64 = 0
    /// The second PRP entry, or the address of a PRP list.
    public var prp2: UInt64 = 0
    /// Command dwords 10 to 15.
    public var cdw10: UInt32 = 0, cdw11: UInt32 = 0, cdw12: UInt32 = 0, cdw13: UInt32 = 0, cdw14: UInt32 = 0, cdw15: UInt32 = 0

    /// A command with `opcode` and every other field 0.
    public init(opcode: UInt8) { self.opcode = opcode }

    /// Writes the entry at `address` (64 bytes, 64-byte aligned).
    public func store(to address: UnsafeMutableRawPointer) {
        unsafe address.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        unsafe address.storeBytes(of: (UInt32(opcode) | UInt32(commandID) << 16).littleEndian, as: UInt32.self)
        unsafe address.storeBytes(of: namespace.littleEndian, toByteOffset: 4, as: UInt32.self)
        unsafe address.storeBytes(of: prp1.littleEndian, toByteOffset: 24, as: UInt64.self)
        unsafe address.storeBytes(of: prp2.littleEndian, toByteOffset: 32, as: UInt64.self)
        unsafe address.storeBytes(of: cdw10.littleEndian, toByteOffset: 40, as: UInt32.self)
        unsafe address.storeBytes(of: cdw11.littleEndian, toByteOffset: 44, as: UInt32.self)
        unsafe address.storeBytes(of: cdw12.littleEndian, toByteOffset: 48, as: UInt32.self)
        unsafe address.storeBytes(of: cdw13.littleEndian, toByteOffset: 52, as: UInt32.self)
        unsafe address.storeBytes(of: cdw14.littleEndian, toByteOffset: 56, as: UInt32.self)
        unsafe address.storeBytes(of: cdw15.littleEndian, toByteOffset: 60, as: UInt32.self)
    }

    /// Reads an entry back from `address` (what a controller does).
    public init(loading address: UnsafeRawPointer) {
        let dword0 = UInt32(littleEndian: unsafe address.loadUnaligned(as: UInt32.self))
        opcode = UInt8(truncatingIfNeeded: dword0)
        commandID = UInt16(truncatingIfNeeded: dword0 >> 16)
        namespace = UInt32(littleEndian: unsafe address.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        prp1 = UInt64(littleEndian: unsafe address.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        prp2 = UInt64(littleEndian: unsafe address.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
        let dwords = (0..<6).map { UInt32(littleEndian: unsafe address.loadUnaligned(fromByteOffset: 40 + 4 * $0, as: UInt32.self)) }
        (cdw10, cdw11, cdw12, cdw13, cdw14, cdw15) = (dwords[0], dwords[1], dwords[2], dwords[3], dwords[4], dwords[5])
    }
}

/// Admin and NVM command set opcodes the driver uses.
public enum NVMeOpcode {
    /// Admin: Delete I/O Submission Queue.
    public static let deleteSubmissionQueue: UInt8 = 0x00
    /// Admin: Create I/O Submission Queue.
    public static let createSubmissionQueue: UInt8 = 0x01
    /// Admin: Delete I/O Completion Queue.
    public static let deleteCompletionQueue: UInt8 = 0x04
    /// Admin: Create I/O Completion Queue.
    public static let createCompletionQueue: UInt8 = 0x05
    /// Admin: Identify.
    public static let identify: UInt8 = 0x06
    /// NVM: Flush.
    public static let flush: UInt8 = 0x00
    /// NVM: Write.
    public static let write: UInt8 = 0x01
    /// NVM: Read.
    public static let read: UInt8 = 0x02
    /// NVM: Write Zeroes.
    public static let writeZeroes: UInt8 = 0x08
    /// Admin: Set Features.
    public static let setFeatures: UInt8 = 0x09
    /// Admin: Abort.
    public static let abort: UInt8 = 0x08
}

/// A completion queue entry's status field (without the phase bit).
public struct NVMeStatus: Sendable, Hashable, CustomStringConvertible {
    /// Status Code Type (0 generic, 1 command specific, 2 media errors).
    public var codeType: UInt8
    /// Status Code.
    public var code: UInt8
    /// Do Not Retry (DNR): the same command would fail again.
    public var doNotRetry: Bool
    /// More (M): the controller has more about the error in the Error Information log page.
    public var more: Bool
    /// Command Retry Delay (CRD): 0, or which of the controller's retry delay times (CRDT1-3
    /// in Identify Controller) to wait before retrying.
    public var retryDelay: UInt8

    /// The status of a completion's bits 15:1 (`raw` is the 16-bit field, phase included):
    /// SC (8:1), SCT (11:9), CRD (13:12), M (14), DNR (15).
    public init(raw: UInt16) {
        code = UInt8(truncatingIfNeeded: raw >> 1)
        codeType = UInt8(truncatingIfNeeded: (raw >> 9) & 0x7)
        retryDelay = UInt8(truncatingIfNeeded: (raw >> 12) & 0x3)
        more = raw & 0x4000 != 0
        doNotRetry = raw & 0x8000 != 0
    }

    /// A status of `codeType` and `code`.
    public init(codeType: UInt8, code: UInt8, doNotRetry: Bool = false, more: Bool = false, retryDelay: UInt8 = 0) {
        self.codeType = codeType
        self.code = code
        self.doNotRetry = doNotRetry
        self.more = more
        self.retryDelay = retryDelay
    }

    /// Command Aborted By Host (SCT 3, Path Related Status, SC 0x71): what the driver
    /// reports for a command that was in flight when it reset the controller
    /// (``NVMeController/resetController()``); the controller never completes it. Linux's
    /// nvme driver reports the same status for the same case.
    public static let abortedByHost = NVMeStatus(codeType: 3, code: 0x71)

    /// Whether the command succeeded.
    public var isSuccess: Bool { codeType == 0 && code == 0 }

    /// `SCT 0 SC 0x80` style.
    public var description: String {
        "SCT \(codeType) SC 0x\(String(code, radix: 16))\(retryDelay != 0 ? " CRD \(retryDelay)" : "")\(more ? " M" : "")\(doNotRetry ? " DNR" : "")"
    }
}
