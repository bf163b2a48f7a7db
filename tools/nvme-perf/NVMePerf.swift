import ArgumentParser
import DriverToolOptions
import DMAMemory
import Foundation
import Histogram
import IOMMUFD
import MockKernel
import NVMe
import VFIO

/// `nvme-perf`: random 4 KiB reads or writes at a fixed queue depth for a fixed time on an
/// NVMe controller bound to vfio-pci, driven by this toolkit's user-space NVMe driver (in
/// the spirit of SPDK's `perf` and fio's `randread`): IOPS, bandwidth and latency
/// percentiles, as text or JSON.
@main
struct NVMePerf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvme-perf",
        abstract: "Random-I/O benchmark of the user-space NVMe driver (IOPS, latency percentiles).")

    @Argument(help: "The controller's PCI address (dddd:bb:dd.f), bound to vfio-pci.")
    var device: String

    @Option(help: "randread or randwrite.")
    var rw = "randread"

    @Option(name: .customLong("queue-depth"), help: "Commands kept in flight (1 to 1023).")
    var queueDepth = 1

    @Option(name: .customLong("io-size"), help: "Bytes per command: a multiple of the block size, at most 8192.")
    var ioSize = 4096

    @Option(name: .customLong("io-queue-size"), help: "Entries in the I/O queue pair (more than the queue depth; default: the larger of 64 and the queue depth + 1).")
    var ioQueueSize: Int?

    @Option(help: "Seconds measured.")
    var time = 5.0

    @Option(help: "Seconds run first and not measured.")
    var ramp = 0.0

    @Option(help: "Namespace id (default: the first active one).")
    var namespace: UInt32?

    @Option(help: "Seed of the random offsets.")
    var seed: UInt64 = 0x5eed

    @OptionGroup var options: DriverToolOptions

    /// What is printed.
    struct Report: Codable {
        var device: String
        var path: String
        var rw: String
        var queueDepth: Int
        var ioSize: Int
        var seconds: Double
        var completed: Int
        var iops: Double
        var mibPerSecond: Double
        /// Latency in microseconds: mean and the percentiles 50, 90, 99, 99.9, and the maximum.
        var latencyMicroseconds: [String: Double]
    }

    mutating func validate() throws {
        guard ["randread", "randwrite"].contains(rw) else { throw ValidationError("--rw is randread or randwrite") }
        guard (1...1023).contains(queueDepth) else { throw ValidationError("--queue-depth is 1 to 1023") }
        guard ioSize > 0, ioSize <= 2 * NVMeController.pageSize else { throw ValidationError("--io-size is at most 8192 bytes") }
        guard time > 0, ramp >= 0 else { throw ValidationError("--time must be positive and --ramp not negative") }
        if let ioQueueSize, ioQueueSize <= queueDepth || ioQueueSize > 1024 {
            throw ValidationError("--io-queue-size is more than --queue-depth and at most 1024")
        }
    }

    mutating func run() throws {
        let address = try parsePCIAddress(device)
        let choice = try options.pathChoice()
        let system = try options.system(mockDevices: [.nvme(address: address.description, group: 4)]) { kernel in
            kernel.installNVMeModel(address.description, blockCount: 1 << 16, queueEntries: 1024)
        }
        let owned = try VFIOPCIDevice(address, path: choice, system: system)
        try owned.device.setBusMaster(true)
        defer { try? owned.device.setBusMaster(false) }
        let manager = try DMAMemoryManager(addressSpace: owned.addressSpace)
        let controller = try NVMeController(owned.device, manager: manager)
        guard let nsid = try namespace ?? controller.activeNamespaces().first else { throw ValidationError("the controller has no active namespace") }
        let identity = try controller.identifyNamespace(nsid)
        guard ioSize % identity.blockSize == 0 else { throw ValidationError("--io-size must be a multiple of the block size (\(identity.blockSize))") }
        // A queue larger than the queue depth lets the driver tell the controller the
        // completion queue's head once per many completions rather than once per reap.
        let queue = try controller.makeIOQueue(depth: ioQueueSize ?? max(queueDepth + 1, 64))
        let slot = (ioSize + NVMeController.pageSize - 1) / NVMeController.pageSize * NVMeController.pageSize
        let buffers = try manager.makeRegion(length: slot * queueDepth, backing: .exactly(.memfd))
        let workload = RandomIOWorkload(queue: queue, namespace: nsid, identity: identity, buffers: buffers.iova, buffersLength: buffers.length)
        let outcome = try workload.run(.init(transfer: rw == "randread" ? .read : .write, queueDepth: queueDepth, ioSize: ioSize,
                                             seconds: time, rampSeconds: ramp, seed: seed))
        try controller.shutdown()
        if let failed = outcome.failed { throw NVMeError.commandFailed(opcode: rw == "randread" ? 0x02 : 0x01, status: failed) }

        let histogram = outcome.latencies
        func microseconds(_ nanoseconds: UInt64) -> Double { (Double(nanoseconds) / 1000 * 10).rounded() / 10 }
        let latency: [String: Double] = [
            "mean": (histogram.mean / 100).rounded() / 10,
            "p50": microseconds(histogram.valueAtPercentile(50)), "p90": microseconds(histogram.valueAtPercentile(90)),
            "p99": microseconds(histogram.valueAtPercentile(99)), "p99.9": microseconds(histogram.valueAtPercentile(99.9)),
            "max": microseconds(histogram.max),
        ]
        let report = Report(device: address.description, path: owned.device.openedThrough == .iommufdCdev ? "iommufd" : "type1", rw: rw,
                            queueDepth: queueDepth, ioSize: ioSize, seconds: Double(outcome.elapsedNanoseconds) / 1e9,
                            completed: outcome.completed, iops: outcome.iops.rounded(),
                            mibPerSecond: (outcome.iops * Double(ioSize) / 1_048_576 * 10).rounded() / 10, latencyMicroseconds: latency)
        if options.json {
            try printJSON(report)
        } else {
            print("nvme-perf \(report.device) via \(report.path): \(rw) \(ioSize) bytes, queue depth \(queueDepth), \(String(format: "%.2f", report.seconds)) s")
            print("  IOPS \(Int(report.iops))  bandwidth \(report.mibPerSecond) MiB/s  completed \(report.completed)")
            print("  latency (µs): mean \(latency["mean"]!)  p50 \(latency["p50"]!)  p90 \(latency["p90"]!)  p99 \(latency["p99"]!)  p99.9 \(latency["p99.9"]!)  max \(latency["max"]!)")
        }
    }
}
