import DMAMemory
import Foundation
import IOMMUFD
import Logging
import MockKernel
import SystemPackage
import Testing
import VFIO

/// Collects what a logger is given, for tests (no global bootstrap).
final class CollectedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String] = []

    var messages: [String] { lock.withLock { entries } }

    func add(_ message: String) { lock.withLock { entries.append(message) } }

    /// A logger at debug level that writes here.
    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in CollectingLogHandler(store: self) }
        logger.logLevel = .debug
        return logger
    }
}

struct CollectingLogHandler: LogHandler {
    let store: CollectedLogs
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.add("\(event.level) \(event.message)")
    }
}

/// A deinitializer cannot throw: what it fails to tear down is logged at debug level.
@Suite("teardown failures are logged, not swallowed")
struct TeardownLoggingTests {
    @Test("a device whose close fails logs it, and the descriptor is still released")
    func deviceCloseFailureIsLogged() throws {
        let logs = CollectedLogs()
        try withPCIMachine { kernel in
            do {
                let owned = try VFIOPCIDevice(edu, path: .only(.legacyGroup), system: kernel, logger: logs.logger())
                try owned.device.setBusMaster(true)
                kernel.failNthCall(1, with: .ioError, operation: "close")
            }
            #expect(logs.messages.contains("debug closing the VFIO device failed"), "\(logs.messages)")
        }
    }

    @Test("pinned memory whose munmap fails logs it")
    func memoryTeardownFailureIsLogged() throws {
        let logs = CollectedLogs()
        let kernel = MockKernel()
        do {
            let memory = try PinnedMemory(length: 4096, backing: .exactly(.anonymous(transparentHugePages: false)), system: kernel, logger: logs.logger())
            kernel.failNthCall(1, with: .invalidArgument, operation: "munmap")
            _ = consume memory
        }
        #expect(logs.messages.contains("debug unmapping pinned memory failed"), "\(logs.messages)")
    }
}
