import Edu
import IOMMUFD

extension EduDevice {
    /// A DMA round trip through the page table the device is on now: writes 64 bytes that
    /// start at `seed` into `buffer` (mapped at `iova`), has edu copy them in and back out to
    /// the buffer's second half, and says whether every byte came back.
    func roundTrip(_ buffer: UnsafeMutableRawBufferPointer, at iova: IOVA, seed: UInt8) throws -> Bool {
        let half = buffer.count / 2
        for index in 0..<64 { buffer[index] = seed &+ UInt8(index) }
        try copyToDevice(from: iova, count: 64)
        try copyToHost(to: IOVA(iova.rawValue + UInt64(half)), count: 64)
        return (0..<64).allSatisfy { buffer[half + $0] == seed &+ UInt8($0) }
    }
}
