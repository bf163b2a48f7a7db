import CIOMMUFD
import Glibc
import IOMMUFD
import MockKernel
import SystemPackage

// Scenario verbs for mappings: map, mapfile, copy, unmap.
extension ScenarioExecutor {
    // MARK: Mapping

    /// `map IOAS BUFFER [offset=] [length=] [iova=] [fixed] [access=] [user=] [flags=]`
    func map(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("map IOAS BUFFER") }
        let fd = try session.context(step)
        let userAddress: UInt64, length: UInt64
        if let user = step.arguments["user"] {
            userAddress = try session.number(user)
            length = try session.argument(step, "length")
        } else {
            let buffer = try session.buffer(step.words[1])
            let offset = try session.argument(step, "offset", default: 0)
            userAddress = UInt64(UInt(bitPattern: buffer.baseAddress)) + offset
            length = try session.argument(step, "length", default: UInt64(buffer.count) &- offset)
        }
        let iova = try IOMMUFDIOCTL.ioasMap(session.seam, fd, ioas: try session.objectID(step.words[0]), flags: try session.mapFlags(step),
                                            userAddress: userAddress, length: length, iova: try session.argument(step, "iova", default: 0),
                                            fileID: #fileID, line: step.line)
        return Outcome(outputs: ["iova": ScenarioSession.hex(iova)])
    }

    /// `mapfile IOAS MEMFD [start=] [length=] [iova=] [fixed] [access=] [fd=N|iommufd] [flags=]`
    func mapFile(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("mapfile IOAS MEMFD") }
        let fd = try session.context(step)
        let file: Int32
        if step.arguments["fd"] == "iommufd" {
            file = fd  // a file that is neither a memfd nor a dma-buf: the context's own descriptor
        } else if let raw = step.arguments["fd"] {
            file = Int32(truncatingIfNeeded: Int64(bitPattern: try session.number(raw)))
        } else {
            file = try session.memoryFile(step.words[1])
        }
        let iova = try IOMMUFDIOCTL.ioasMapFile(session.seam, fd, ioas: try session.objectID(step.words[0]), flags: try session.mapFlags(step),
                                                fileDescriptor: file, start: try session.argument(step, "start", default: 0),
                                                length: try session.argument(step, "length"), iova: try session.argument(step, "iova", default: 0),
                                                fileID: #fileID, line: step.line)
        return Outcome(outputs: ["iova": ScenarioSession.hex(iova)])
    }

    /// `copy DST SRC src=IOVA length= [iova=] [fixed] [access=] [flags=]`
    func copy(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 else { throw session.fail("copy DST SRC") }
        let fd = try session.context(step)
        let iova = try IOMMUFDIOCTL.ioasCopy(session.seam, fd, destination: try session.objectID(step.words[0]),
                                             source: try session.objectID(step.words[1]), flags: try session.mapFlags(step),
                                             length: try session.argument(step, "length"), destinationIOVA: try session.argument(step, "iova", default: 0),
                                             sourceIOVA: try session.argument(step, "src"), fileID: #fileID, line: step.line)
        return Outcome(outputs: ["iova": ScenarioSession.hex(iova)])
    }

    /// `unmap IOAS iova= length=`; the output is the number of bytes unmapped.
    func unmap(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let ioas = step.words.first else { throw session.fail("unmap IOAS") }
        let fd = try session.context(step)
        let unmapped = try IOMMUFDIOCTL.ioasUnmap(session.seam, fd, ioas: try session.objectID(ioas), iova: try session.argument(step, "iova"),
                                                  length: try session.argument(step, "length"), fileID: #fileID, line: step.line)
        return Outcome(outputs: ["length": ScenarioSession.hex(unmapped)])
    }
}
