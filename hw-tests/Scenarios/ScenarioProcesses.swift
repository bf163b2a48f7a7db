import Glibc
import IOMMUFD
import IOMMUFDSystem
import MockKernel
import SystemPackage

// A second process in a scenario: a step with `process=NAME` runs in another process of
// the same machine, with its own descriptors, memory, names and memlock limits, made at
// its first step. On MockKernel it is a process of the same model (`spawnProcess`); on the
// real kernel a child forked from the runner (which has one thread), which closes every
// descriptor it inherited, then runs the steps it is sent over a pipe and answers each
// outcome. Names are per process: a process cannot use another's descriptors, as none is
// passed between them.

/// Another process of a scenario.
final class ScenarioProcess {
    private enum Backing {
        /// A process of the same MockKernel model, run in this one.
        case model(ScenarioSession)
        /// A forked child: its pid, the pipe it reads step numbers from, the pipe it answers on.
        case child(pid: pid_t, requests: Int32, answers: Int32)
    }

    private let backing: Backing

    /// Starts a process beside `session`'s, for `scenario`; `perform` runs a step in a session.
    init(beside session: ScenarioSession, scenario: Scenario, perform: @escaping (Step, ScenarioSession) throws -> Outcome) throws {
        if let model = session.system as? MockKernel {
            backing = .model(ScenarioSession(system: model.spawnProcess(), devicePath: session.devicePath))
            return
        }
        var requests: [Int32] = [0, 0]
        var answers: [Int32] = [0, 0]
        guard pipe(&requests) == 0 else { throw session.fail("pipe for a second process: errno \(errno)") }
        guard pipe(&answers) == 0 else {
            let error = errno
            _ = Glibc.close(requests[0])
            _ = Glibc.close(requests[1])
            throw session.fail("pipe for a second process: errno \(error)")
        }
        let pid = fork()
        if pid == 0 {
            Self.serve(scenario: scenario, devicePath: session.devicePath, requests: requests[0], answers: answers[1], perform: perform)
        }
        let forkError = errno
        _ = Glibc.close(requests[0])
        _ = Glibc.close(answers[1])
        guard pid > 0 else {
            _ = Glibc.close(requests[1])
            _ = Glibc.close(answers[0])
            throw session.fail("fork for a second process: errno \(forkError)")
        }
        backing = .child(pid: pid, requests: requests[1], answers: answers[0])
    }

    /// Runs `step` (its line number identifies it in the scenario) in this process.
    func perform(_ step: Step, index: Int, perform: (Step, ScenarioSession) throws -> Outcome) throws -> Outcome {
        switch backing {
        case .model(let session):
            session.line = step.line
            return try perform(step, session)
        case .child(_, let requests, let answers):
            var number = Int32(index)
            guard Glibc.write(requests, &number, 4) == 4 else { throw ScriptError(line: step.line, message: "the second process is gone") }
            let answer = Self.readLine(answers)
            guard let answer else { throw ScriptError(line: step.line, message: "the second process did not answer") }
            return try Self.decode(answer, line: step.line)
        }
    }

    /// Ends the process: a model process closes what it holds; a child is told to stop
    /// (end of its request pipe), tears down and is waited for.
    func end() {
        switch backing {
        case .model(let session):
            session.tearDown()
        case .child(let pid, let requests, let answers):
            _ = Glibc.close(requests)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            _ = Glibc.close(answers)
        }
    }

    // MARK: The child

    /// The child's loop; never returns.
    private static func serve(scenario: Scenario, devicePath: String, requests: Int32, answers: Int32,
                              perform: (Step, ScenarioSession) throws -> Outcome) -> Never {
        // Nothing of the parent's: every inherited descriptor but the two pipe ends goes.
        for fd in Int32(3)..<4096 where fd != requests && fd != answers { _ = Glibc.close(fd) }
        let session = ScenarioSession(system: LinuxSystem(), devicePath: devicePath)
        var number: Int32 = 0
        while Glibc.read(requests, &number, 4) == 4 {
            var step = scenario.steps[Int(number)]
            step.arguments["process"] = nil
            session.line = step.line
            let line: String
            do {
                line = encode(try perform(step, session))
            } catch let error as ScriptError {
                line = "S" + oneLine(error.message)
            } catch let errno as Errno {
                line = encode(Outcome(errno: errno))
            } catch let error as IOMMUError {
                line = encode(Outcome(errno: error.errno))
            } catch {
                line = "S" + oneLine("\(error)")
            }
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { Glibc.write(answers, $0.baseAddress, $0.count) }
        }
        session.tearDown()
        _exit(0)
    }

    private static func oneLine(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ")
    }

    /// One line: `ok` or `E<errno>`, then `key=value` fields, separated by tabs.
    static func encode(_ outcome: Outcome) -> String {
        ([outcome.errno.map { "E\($0.rawValue)" } ?? "ok"] + outcome.outputs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
            .joined(separator: "\t")
    }

    static func decode(_ line: String, line number: Int) throws -> Outcome {
        if line.hasPrefix("S") { throw ScriptError(line: number, message: "in the second process: " + line.dropFirst()) }
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        var outcome = Outcome()
        if let head = fields.first, head.hasPrefix("E"), let value = Int32(head.dropFirst()) { outcome.errno = Errno(rawValue: value) }
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: "=") else { continue }
            outcome.outputs[String(field[..<equals])] = String(field[field.index(after: equals)...])
        }
        return outcome
    }

    private static func readLine(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(fd, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }
}
