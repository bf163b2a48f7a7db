import ArgumentParser
import DriverToolOptions
import DMAMemory
import Dispatch
import E1000E
import Foundation
import IOMMUFD
import MockKernel
import VFIO

/// `e1000e-pktgen`: a packet generator and counter on this toolkit's e1000e driver, in the
/// spirit of DPDK's `testpmd` forwarding modes: `txonly` sends minimum-size frames in bursts,
/// `rxonly` receives and counts, `io` forwards what each of two ports receives out of the
/// other (after a first burst on each, like testpmd's `--tx-first`). Packets per second over
/// a fixed window, as text or JSON.
@main
struct PacketGenerator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e1000e-pktgen",
        abstract: "Packet generator and counter for the user-space e1000e driver (txonly, rxonly, io).")

    @Argument(help: "txonly, rxonly or io.")
    var mode: String

    @Option(name: .customLong("port"), help: "A port's PCI address (dddd:bb:dd.f), bound to vfio-pci; io takes two.")
    var ports: [String]

    @Option(help: "Seconds measured.")
    var time = 5.0

    @Option(help: "Seconds run first and not measured.")
    var ramp = 0.0

    @Option(help: "Frame length in bytes without the FCS the NIC appends (60 makes a 64-byte frame).")
    var length = 60

    @Option(help: "Packets per burst (1 to 32).")
    var burst = 32

    @Option(name: .customLong("ring-size"), help: "Descriptors per ring (8 to 256, a multiple of 8).")
    var ringSize = 256

    @OptionGroup var options: DriverToolOptions

    /// What is printed: per port, packets per second sent and received in the window.
    struct Report: Codable {
        struct Port: Codable {
            var device: String
            var txPackets: Int
            var rxPackets: Int
            var txPPS: Double
            var rxPPS: Double
        }
        var mode: String
        var path: String
        var seconds: Double
        var ports: [Port]
    }

    mutating func validate() throws {
        guard ["txonly", "rxonly", "io"].contains(mode) else { throw ValidationError("the mode is txonly, rxonly or io") }
        guard mode != "io" || ports.count == 2 else { throw ValidationError("io forwards between exactly two ports") }
        guard (1...2).contains(ports.count) else { throw ValidationError("one or two --port") }
        guard (1...32).contains(burst) else { throw ValidationError("--burst is 1 to 32") }
        guard (14...E1000E.bufferSize).contains(length) else { throw ValidationError("--length is 14 to 2048") }
        guard ringSize % 8 == 0, (8...256).contains(ringSize) else { throw ValidationError("--ring-size is 8 to 256, a multiple of 8") }
        guard time > 0, ramp >= 0 else { throw ValidationError("--time must be positive and --ramp not negative") }
    }

    mutating func run() throws {
        let addresses = try ports.map(parsePCIAddress)
        let choice = try options.pathChoice()
        // With --backend mock, two ports are joined back to back.
        let mockDevices = addresses.enumerated().map { MockKernel.PCIDevice.e1000e(address: $0.element.description, group: 3 + $0.offset) }
        let system = try options.system(mockDevices: mockDevices) { kernel in
            if addresses.count == 2 {
                kernel.installE1000EPair(addresses[0].description, addresses[1].description)
            } else {
                kernel.installE1000EModel(addresses[0].description)
            }
        }
        let owned = try addresses.map { try VFIOPCIDevice($0, path: choice, system: system) }
        for port in owned { try port.device.setBusMaster(true) }
        defer { for port in owned { try? port.device.setBusMaster(false) } }
        let nics = try owned.map { try E1000E($0.device, manager: try DMAMemoryManager(addressSpace: $0.addressSpace), ringSize: ringSize) }
        defer { for nic in nics { nic.stop() } }

        let counts = runLoop(nics)
        let report = Report(
            mode: mode, path: owned[0].device.openedThrough == VFIODevice.Path.iommufdCdev ? "iommufd" : "type1", seconds: time,
            ports: zip(addresses, counts).map { address, count in
                Report.Port(device: address.description, txPackets: count.sent, rxPackets: count.received,
                            txPPS: (Double(count.sent) / time).rounded(), rxPPS: (Double(count.received) / time).rounded())
            })
        if options.json {
            try printJSON(report)
        } else {
            print("e1000e-pktgen \(mode) via \(report.path), \(length)-byte frames (+FCS), bursts of \(burst), \(time) s:")
            for port in report.ports {
                print("  \(port.device): TX \(port.txPackets) (\(Int(port.txPPS)) pps)  RX \(port.rxPackets) (\(Int(port.rxPPS)) pps)")
            }
        }
    }

    /// Runs the mode for ramp + time seconds; returns each port's packets sent and received
    /// in the measured window. Nothing is allocated inside the loop.
    private func runLoop(_ nics: [E1000E]) -> [(sent: Int, received: Int)] {
        var sent = [Int](repeating: 0, count: nics.count), received = [Int](repeating: 0, count: nics.count)
        let start = DispatchTime.now().uptimeNanoseconds
        let measureFrom = start + UInt64(ramp * 1e9), end = measureFrom + UInt64(time * 1e9)
        let frameLength = length, burst = burst
        var sequence: UInt64 = 0
        // A broadcast frame of the local experimental EtherType 0x88b5 carrying a sequence
        // number, from the port's MAC address (kept as an integer: nothing retained per packet).
        let fill = { (index: Int, frame: UnsafeMutableRawBufferPointer, source: UInt64) in
            unsafe frame.storeBytes(of: UInt64(0xffff_ffff_ffff) | (source & 0xffff) << 48, as: UInt64.self)
            unsafe frame.storeBytes(of: UInt32(truncatingIfNeeded: source >> 16), toByteOffset: 8, as: UInt32.self)
            unsafe frame.storeBytes(of: UInt16(0xb588), toByteOffset: 12, as: UInt16.self)
            if frame.count >= 22 { unsafe frame.storeBytes(of: (sequence &+ UInt64(index)).bigEndian, toByteOffset: 14, as: UInt64.self) }
        }
        let macs = nics.map { nic in nic.macAddress.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
        var now = start
        var measuring = false
        switch mode {
        case "txonly":
            while now < end {
                for (port, nic) in nics.enumerated() {
                    let count = nic.transmit(count: burst, length: frameLength) { index, frame in fill(index, frame, macs[port]) }
                    sequence &+= UInt64(count)
                    if measuring { sent[port] += count }
                }
                now = DispatchTime.now().uptimeNanoseconds
                measuring = now >= measureFrom
            }
        case "rxonly":
            while now < end {
                for (port, nic) in nics.enumerated() {
                    let count = nic.receive(count: burst) { _ in }
                    if measuring { received[port] += count }
                }
                now = DispatchTime.now().uptimeNanoseconds
                measuring = now >= measureFrom
            }
        default:  // io: what one port receives goes out of the other, copied through a scratch area.
            let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: burst * E1000E.bufferSize, alignment: 64)
            defer { scratch.deallocate() }
            var lengths = [Int](repeating: 0, count: burst)
            for (port, nic) in nics.enumerated() {
                _ = nic.transmit(count: burst, length: frameLength) { index, frame in fill(index, frame, macs[port]) }
            }
            while now < end {
                for (port, nic) in nics.enumerated() {
                    var count = 0
                    _ = nic.receive(count: burst) { packet in
                        let length = min(packet.count, E1000E.bufferSize)
                        unsafe UnsafeMutableRawBufferPointer(rebasing: scratch[(count * E1000E.bufferSize)...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: packet[..<length]))
                        lengths[count] = length
                        count += 1
                    }
                    guard count > 0 else { continue }
                    let other = nics[1 - port]
                    let forwarded = other.transmit(count: count, length: lengths[0]) { index, frame in
                        unsafe frame.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[(index * E1000E.bufferSize)..<(index * E1000E.bufferSize + min(lengths[index], frame.count))]))
                    }
                    if measuring {
                        received[port] += count
                        sent[1 - port] += forwarded
                    }
                }
                now = DispatchTime.now().uptimeNanoseconds
                measuring = now >= measureFrom
            }
        }
        return Array(zip(sent, received))
    }
}
