import CIOMMUFD
import IOMMUFD
import SystemPackage
import VFIO
#if canImport(Glibc)
import Glibc
#endif

// Scenario verbs for interrupts: eventfd, irq_set (VFIO_DEVICE_SET_IRQS), eventfd_read.
extension ScenarioExecutor {
    /// `eventfd NAME`: a non-blocking eventfd for interrupt triggers.
    func makeEventfd(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1 else { throw session.fail("eventfd NAME") }
        session.eventfds[step.words[0]] = try session.system.eventfd(initialValue: 0, flags: Int32(EFD_NONBLOCK))
        return Outcome(outputs: [:])
    }

    /// `irq_set DEVICE INDEX data=none|bool|eventfd action=trigger|mask|unmask [start=] [count=]
    /// [fd=NAME|N] [values=1,0,...]`: `VFIO_DEVICE_SET_IRQS`; with `data=eventfd` every vector
    /// gets `fd`, with `data=bool` the `values`.
    func setInterrupts(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("irq_set DEVICE INDEX data= action=") }
        let start = UInt32(try session.argument(step, "start", default: 0))
        let count = UInt32(try session.argument(step, "count", default: 1))
        let dataType: UInt32
        var data: [UInt8] = []
        switch step.arguments["data"] ?? "none" {
        case "none": dataType = VFIO_IRQ_SET_DATA_NONE
        case "bool":
            dataType = VFIO_IRQ_SET_DATA_BOOL
            data = try (step.arguments["values"] ?? "").split(separator: ",").map { UInt8(try session.number(String($0))) }
        case "eventfd":
            dataType = VFIO_IRQ_SET_DATA_EVENTFD
            let text = step.arguments["fd"] ?? "-1"
            let descriptor = try session.eventfds[text] ?? Int32(truncatingIfNeeded: Int64(bitPattern: try session.number(text)))
            for _ in 0..<count { withUnsafeBytes(of: descriptor) { data += $0 } }
        case let other: throw session.fail("data=\(other): use none, bool or eventfd")
        }
        let action: UInt32
        switch step.arguments["action"] ?? "trigger" {
        case "trigger": action = VFIO_IRQ_SET_ACTION_TRIGGER
        case "mask": action = VFIO_IRQ_SET_ACTION_MASK
        case "unmask": action = VFIO_IRQ_SET_ACTION_UNMASK
        case let other: throw session.fail("action=\(other): use trigger, mask or unmask")
        }
        let extra = UInt32(try session.argument(step, "flags", default: 0))
        try data.withUnsafeBytes { bytes in
            try VFIODeviceIOCTL.setIRQs(session.seam, try session.device(step.words[0]), index: UInt32(try session.number(step.words[1])),
                                        flags: dataType | action | extra, start: start, count: count, data: bytes,
                                        fileID: #fileID, line: step.line)
        }
        return Outcome(outputs: [:])
    }

    /// `eventfd_read NAME`: reads the eventfd's counter (resetting it); outputs `value`
    /// (EAGAIN when nothing arrived).
    func readEventfd(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 1, let fd = session.eventfds[step.words[0]] else { throw session.fail("eventfd_read NAME") }
        var value: UInt64 = 0
        _ = try withUnsafeMutableBytes(of: &value) { try session.system.read(fd, into: $0) }
        return Outcome(outputs: ["value": "\(value)"])
    }
}
