import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// Scenario verbs for memory: buffer, release, memfd, truncate, view, poke, peek, same.
extension ScenarioExecutor {
    // MARK: Memory

    /// `buffer NAME SIZE [readonly]`: anonymous memory, 2 MiB aligned so automatic IOVAs
    /// (which follow the user address's alignment) are the same on every backend.
    func allocateBuffer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("buffer NAME SIZE") }
        let size = Int(try session.number(step.words[1]))
        let alignment = 2 << 20
        let protection = step.has("readonly") ? PROT_READ : PROT_READ | PROT_WRITE
        let reservation = size + alignment
        let base = try session.system.mmap(address: nil, length: reservation, protection: protection,
                                           flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
        let start = (Int(bitPattern: base) + alignment - 1) & ~(alignment - 1)
        let head = start - Int(bitPattern: base)
        if head > 0 { try session.system.munmap(base, length: head) }
        let tail = reservation - head - size
        if tail > 0 { try session.system.munmap(UnsafeMutableRawPointer(bitPattern: start + size)!, length: tail) }
        let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: start), count: size)
        if !step.has("readonly") && !step.has("untouched") {
            // Fault the pages in, as a driver's buffer would be.
            for offset in stride(from: 0, to: size, by: 4096) { buffer[offset] = UInt8(truncatingIfNeeded: offset >> 12) }
        }
        session.buffers[step.words[0]] = buffer
        session.liveMappings.append((start, size))
        return Outcome()
    }

    /// `release NAME [offset=] [length=]`: munmap all or part of a buffer. The name
    /// keeps its address, so later steps can point into the hole.
    func releaseBuffer(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("release NAME") }
        let buffer = try session.buffer(name)
        let offset = Int(try session.argument(step, "offset", default: 0))
        let length = Int(try session.argument(step, "length", default: UInt64(buffer.count - offset)))
        guard offset + length <= buffer.count, offset % 4096 == 0, length % 4096 == 0, length > 0 else {
            throw session.fail("release outside \(name)")
        }
        let start = Int(bitPattern: buffer.baseAddress!) + offset
        try session.system.munmap(buffer.baseAddress! + offset, length: length)
        session.forgetMapping(start: start, length: length)
        return Outcome()
    }

    /// `memfd NAME SIZE`: a memfd of that size (for `mapfile`).
    func createMemoryFile(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("memfd NAME SIZE") }
        let fd = try session.system.memfdCreate("scenario-" + step.words[0], flags: 0)
        session.memoryFiles[step.words[0]] = fd
        try session.system.ftruncate(fd, length: Int64(try session.number(step.words[1])))
        return Outcome()
    }

    /// `truncate NAME SIZE`: change a memfd's size.
    func truncate(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("truncate NAME SIZE") }
        try session.system.ftruncate(try session.memoryFile(step.words[0]), length: Int64(try session.number(step.words[1])))
        return Outcome()
    }

    /// `view NAME MEMFD LENGTH [offset=]`: a shared read-write `mmap` of a memfd, used as a
    /// buffer. The mapping may reach past the end of the file.
    func mapMemoryFile(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("view NAME MEMFD LENGTH") }
        let fd = try session.memoryFile(step.words[1])
        let length = Int(try session.number(step.words[2]))
        let base = try session.system.mmap(address: nil, length: length, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED,
                                           fd: fd, offset: Int64(try session.argument(step, "offset", default: 0)))
        session.buffers[step.words[0]] = UnsafeMutableRawBufferPointer(start: base, count: length)
        session.liveMappings.append((Int(bitPattern: base), length))
        return Outcome()
    }

    /// `poke BUFFER offset= value=`: the CPU writes one byte.
    func poke(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let (buffer, offset) = try byteOfBuffer(step, session, usage: "poke BUFFER offset= value=")
        buffer[offset] = UInt8(truncatingIfNeeded: try session.argument(step, "value"))
        return Outcome()
    }

    /// `peek BUFFER offset=`: the CPU reads one byte; outputs `value`.
    func peek(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        let (buffer, offset) = try byteOfBuffer(step, session, usage: "peek BUFFER offset=")
        return Outcome(outputs: ["value": ScenarioSession.hex(UInt64(buffer[offset]))])
    }

    /// The buffer a `poke` or `peek` names and the byte `offset=` picks inside it.
    private func byteOfBuffer(_ step: Step, _ session: ScenarioSession, usage: String) throws -> (UnsafeMutableRawBufferPointer, Int) {
        guard let name = step.words.first else { throw session.fail(usage) }
        let buffer = try session.buffer(name)
        let offset = Int(try session.argument(step, "offset"))
        guard offset < buffer.count else { throw session.fail("offset \(offset) outside \(name)") }
        return (buffer, offset)
    }

    /// `same A B`: whether two buffers start at one address; outputs `same` (yes or no),
    /// never the addresses, which differ between backends.
    func sameAddress(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("same A B") }
        let first = try session.buffer(step.words[0]).baseAddress
        let second = try session.buffer(step.words[1]).baseAddress
        return Outcome(outputs: ["same": first == second ? "yes" : "no"])
    }
}
