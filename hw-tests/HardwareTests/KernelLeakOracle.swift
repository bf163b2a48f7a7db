import CIOMMUFD
import Foundation
@_spi(Selftest) import IOMMUFD
import Synchronization
import Testing

/// What the kernel itself says this process holds: the pinned and locked page counters
/// of its `mm` and the descriptors that keep iommufd or VFIO objects alive. The hardware
/// tier's leak oracle compares it before and after every test, as the kernel selftests'
/// teardown does (`teardown_iommufd` in `tools/testing/selftests/iommu/iommufd_utils.h`).
struct KernelResourceSnapshot: Equatable, CustomStringConvertible {
    /// `VmPin` of `/proc/self/status`, in KiB: `mm->pinned_vm`, which iommufd raises for every
    /// page it pins (`iopt_pages_update_pinned`, `drivers/iommu/iommufd/pages.c:1011-1037`).
    var pinnedKiB: UInt64
    /// `VmLck`, in KiB: `mm->locked_vm`, which the type1 container charges for its pins
    /// (`vfio_lock_acct`, `drivers/vfio/vfio_iommu_type1.c:443`).
    var lockedKiB: UInt64
    /// The targets of the open descriptors that hold kernel IOMMU or VFIO state or DMA
    /// memory: `/dev/iommu`, `/dev/vfio/...`, VFIO device and dma-buf anon inodes, memfds.
    var kernelObjectDescriptors: [String]

    /// Reads the process's current state from procfs.
    static func take() -> KernelResourceSnapshot {
        let pinned = statusField("VmPin"), locked = statusField("VmLck")
        if pinned == nil || locked == nil {
            Issue.record("the leak oracle cannot read VmPin and VmLck from /proc/self/status")
        }
        return KernelResourceSnapshot(
            pinnedKiB: pinned ?? 0, lockedKiB: locked ?? 0,
            kernelObjectDescriptors: descriptorTargets().filter(holdsKernelObject).sorted())
    }

    var description: String {
        "VmPin \(pinnedKiB) kB, VmLck \(lockedKiB) kB, descriptors \(kernelObjectDescriptors)"
    }

    private static func statusField(_ name: String) -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            // "VmPin:\t     123 kB": a tab, padding, the number, the unit.
            return UInt64(line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    private static func descriptorTargets() -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return [] }
        return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
    }

    private static func holdsKernelObject(_ target: String) -> Bool {
        target.hasPrefix("/dev/iommu") || target.hasPrefix("/dev/vfio") || target.hasPrefix("anon_inode:[vfio")
            || target.hasPrefix("anon_inode:iommufd") || target.hasPrefix("anon_inode:dmabuf")
            || target.hasPrefix("/dmabuf:") || target.hasPrefix("/memfd:")
    }
}

/// The user memory a hardware test hands to the kernel, owned by the test's leak check:
/// after the test body has dropped every IOMMU object, the kernel is asked whether any page
/// of it is still pinned (`IOMMU_TEST_OP_MD_CHECK_REFS` with refs 0, where the kernel has
/// the selftest command), and only then is the memory freed.
final class PinnedMemoryLedger: Sendable {
    /// Base address and length of every buffer handed out.
    private let buffers = Mutex<[(address: UInt, count: Int)]>([])

    /// The ledger of the running hardware test, set by ``KernelLeakCheck``.
    @TaskLocal static var current: PinnedMemoryLedger?

    /// Page-aligned memory of its own mapping, never backed by transparent huge pages
    /// (`MADV_NOHUGEPAGE`: `IOMMU_TEST_OP_MD_CHECK_REFS` skips compound pages, so a buffer
    /// that landed in a THP-backed heap made every pin-count check pass), every page written
    /// once; unmapped by the leak check after the test.
    func allocate(byteCount: Int) -> UnsafeMutableRawBufferPointer {
        let system = LinuxSystem()
        let length = (byteCount + 4095) & ~4095
        guard let base = try? system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE,
                                          flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0) else {
            preconditionFailure("the hardware tests cannot map \(length) bytes of anonymous memory")
        }
        try? system.madvise(base, length: length, advice: CIOMMUFD_MADV_NOHUGEPAGE)
        let buffer = UnsafeMutableRawBufferPointer(start: base, count: byteCount)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        buffers.withLock { $0.append((UInt(bitPattern: base), length)) }
        return buffer
    }

    /// Checks that nothing pins any recorded buffer any more, records an issue for each that
    /// is still pinned, then frees them all.
    func releaseAll(checkingPins: Bool, for test: String) {
        let taken = buffers.withLock { buffers in
            let taken = buffers
            buffers.removeAll()
            return taken
        }
        for (address, count) in taken {
            guard let base = UnsafeMutableRawPointer(bitPattern: address) else { continue }
            defer { try? LinuxSystem().munmap(base, length: count) }
            guard checkingPins else { continue }
            do {
                let iommufd = try IOMMUFD()
                try iommufd.selftestCheckRefs(address: base, length: UInt64(count), refs: 0)
            } catch {
                Issue.record("leak: after \(test), IOMMU_TEST_OP_MD_CHECK_REFS says pages of the \(count)-byte buffer at \(base) are still pinned: \(error)")
            }
        }
    }
}

/// The hardware tier's leak oracle, applied to every test of the hardware suite: the kernel's
/// pinned and locked page counts and the IOMMU/VFIO descriptors are back at their baseline
/// after the test, and memory the test took from ``Hardware/pinnableBuffer(byteCount:)`` has
/// no pin left (`IOMMU_TEST_OP_MD_CHECK_REFS`, where the kernel has the selftest command).
struct KernelLeakCheck: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?,
                      performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else {
            try await function()
            return
        }
        let before = KernelResourceSnapshot.take()
        let ledger = PinnedMemoryLedger()
        defer { ledger.releaseAll(checkingPins: Hardware.hasSelftest, for: test.name) }
        try await PinnedMemoryLedger.$current.withValue(ledger) {
            try await function()
        }
        let after = KernelResourceSnapshot.take()
        if after != before {
            Issue.record("leak: \(test.name) left the kernel holding more than before: before \(before); after \(after)")
        }
    }
}

extension Trait where Self == KernelLeakCheck {
    /// The kernel-side leak check after every test (see ``KernelLeakCheck``).
    static var kernelLeakCheck: KernelLeakCheck { KernelLeakCheck() }
}

extension Hardware {
    /// Page-aligned, written memory for a test to map, owned by the running test's leak check,
    /// which frees it after checking that the kernel holds no pin on it.
    static func pinnableBuffer(byteCount: Int) -> UnsafeMutableRawBufferPointer {
        guard let ledger = PinnedMemoryLedger.current else {
            preconditionFailure("Hardware.pinnableBuffer is for tests of the hardware suite (the kernelLeakCheck trait owns the memory)")
        }
        return ledger.allocate(byteCount: byteCount)
    }
}
