import CIOMMUFD
import IOMMUFD
import SystemPackage

// Scenario verb for hardware page tables: hwpt.
extension ScenarioExecutor {
    /// `hwpt NAME PT DEVICE [flags=nest+dirty+pasid+fault|N] [fault_id=] [data_type=]
    /// [data=PAYLOAD [data_len=]]`: `IOMMU_HWPT_ALLOC` for DEVICE (a bound device's name or
    /// `D.idev`) on PT (an IOAS: a paging HWPT; a HWPT: a nested one, with a payload's
    /// bytes as its vendor data). Binds NAME to the new HWPT; outputs `id`.
    func allocateHWPT(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("hwpt NAME PT DEVICE") }
        let fd = try session.context(step)
        var flags: UInt32 = 0
        for word in (step.arguments["flags"] ?? "").split(separator: "+") where !word.isEmpty {
            switch word {
            case "nest": flags |= IOMMU_HWPT_ALLOC_NEST_PARENT
            case "dirty": flags |= IOMMU_HWPT_ALLOC_DIRTY_TRACKING
            case "pasid": flags |= IOMMU_HWPT_ALLOC_PASID
            case "fault": flags |= IOMMU_HWPT_FAULT_ID_VALID
            default: flags |= UInt32(truncatingIfNeeded: try session.number(String(word)))
            }
        }
        let data = try session.dataPayload(step).map { UnsafeRawBufferPointer($0) }
        let id = try IOMMUFDIOCTL.hwptAlloc(session.seam, fd, device: try session.objectID(step.words[2]),
                                            pageTable: try session.objectID(step.words[1]), flags: flags,
                                            dataType: UInt32(truncatingIfNeeded: try session.argument(step, "data_type", default: 0)),
                                            data: data, faultID: UInt32(truncatingIfNeeded: try session.argument(step, "fault_id", default: 0)),
                                            fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        return Outcome(outputs: ["id": "\(id)"])
    }
}

extension ScenarioExecutor {
    /// `dirty_track HWPT on|off [flags=N]`: `IOMMU_HWPT_SET_DIRTY_TRACKING` (`flags=` sends raw flags).
    func setDirtyTracking(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 2 || (step.words.count == 1 && step.arguments["flags"] != nil) else {
            throw session.fail("dirty_track HWPT on|off")
        }
        let fd = try session.context(step)
        let flags = try step.arguments["flags"].map { UInt32(truncatingIfNeeded: try session.number($0)) }
            ?? (step.words[1] == "on" ? IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0)
        try IOMMUFDIOCTL.hwptSetDirtyTracking(session.seam, fd, hwpt: try session.objectID(step.words[0]), flags: flags,
                                              fileID: #fileID, line: step.line)
        return Outcome()
    }

    /// `dirty_read HWPT iova= length= page_size= [no_clear] [fill=B]`: `IOMMU_HWPT_GET_DIRTY_BITMAP`
    /// into a bitmap whose bytes start as `fill` (default 0); outputs `bits` (the bitmap's
    /// 64-bit words in hex, lowest first, joined by `,`), also after a failure.
    func readDirtyBitmap(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("dirty_read HWPT iova= length= page_size=") }
        let fd = try session.context(step)
        let length = try session.argument(step, "length")
        let pageSize = try session.argument(step, "page_size")
        let pages = pageSize == 0 ? 1 : max(1, (length + pageSize - 1) / pageSize)
        guard pages <= 1 << 16 else { throw session.fail("dirty_read: at most 65536 pages") }
        let fill = UInt8(truncatingIfNeeded: try session.argument(step, "fill", default: 0))
        var words = [UInt64](repeating: UInt64(fill) * 0x0101_0101_0101_0101, count: Int((pages + 63) / 64))
        let hwpt = try session.objectID(name)
        let iova = try session.argument(step, "iova")
        let flags = step.has("no_clear") ? IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR : 0
        var failure: Errno?
        words.withUnsafeMutableBytes { bitmap in
            do throws(IOMMUError) {
                try IOMMUFDIOCTL.hwptGetDirtyBitmap(session.seam, fd, hwpt: hwpt, iova: iova, length: length, pageSize: pageSize,
                                                    flags: flags, bitmap: bitmap, fileID: #fileID, line: step.line)
            } catch {
                failure = error.errno
            }
        }
        return Outcome(errno: failure, outputs: ["bits": words.map { ScenarioSession.hex($0) }.joined(separator: ",")])
    }

    /// `dirty_mark HWPT iova= length= page_size= bits=W[,W...]`: the selftest's
    /// `IOMMU_TEST_OP_DIRTY` with the given bitmap words; outputs `marked`.
    func markDirty(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("dirty_mark HWPT iova= length= page_size= bits=") }
        let fd = try session.context(step)
        let words = try (step.arguments["bits"] ?? "0").split(separator: ",").map { try session.number(String($0)) }
        let hwpt = try session.objectID(name)
        let iova = try session.argument(step, "iova"), length = try session.argument(step, "length")
        let pageSize = try session.argument(step, "page_size")
        let marked = try words.withUnsafeBytes { (bitmap) throws(IOMMUError) -> UInt64 in
            try SelftestIOCTL.markDirty(session.seam, fd, hwpt: hwpt, iova: iova, length: length, pageSize: pageSize,
                                        bitmap: bitmap, fileID: #fileID, line: step.line)
        }
        return Outcome(outputs: ["marked": "\(marked)"])
    }
}

extension ScenarioExecutor {
    /// `invalidate HWPT [data=PAYLOAD] [data_type=N] [entry_len=N] [num=N] [uptr=N]`:
    /// `IOMMU_HWPT_INVALIDATE` of a payload's entries (by default the selftest format,
    /// 8-byte entries, as many as the payload holds; none without a payload); outputs
    /// `handled`, the count the kernel wrote back, also after a failure.
    func invalidate(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard let name = step.words.first else { throw session.fail("invalidate HWPT [data=PAYLOAD]") }
        let fd = try session.context(step)
        let entryLength = UInt32(truncatingIfNeeded: try session.argument(step, "entry_len", default: 8))
        var address: UnsafeRawPointer?
        var count: UInt64 = 0
        if let payload = step.arguments["data"] {
            let buffer = try session.buffer(payload)
            address = UnsafeRawPointer(buffer.baseAddress)
            count = entryLength == 0 ? 0 : UInt64(buffer.count) / UInt64(entryLength)
        }
        if let uptr = step.arguments["uptr"] { address = UnsafeRawPointer(bitPattern: UInt(try session.number(uptr))) }
        let dataType = UInt32(truncatingIfNeeded: try session.argument(step, "data_type", default: UInt64(IOMMU_HWPT_INVALIDATE_DATA_SELFTEST)))
        let hwpt = try session.objectID(name)
        let entryCount = UInt32(truncatingIfNeeded: try session.argument(step, "num", default: count))
        do throws(IOMMUError) {
            let handled = try IOMMUFDIOCTL.hwptInvalidate(session.seam, fd, pageTable: hwpt, dataType: dataType, entries: address,
                                                          entryLength: entryLength, entryCount: entryCount, fileID: #fileID, line: step.line)
            return Outcome(outputs: ["handled": "\(handled)"])
        } catch {
            return Outcome(errno: error.errno, outputs: ["handled": "\(error.context.handledCount ?? 0)"])
        }
    }

    /// `check_iotlb HWPT ID VALUE`: the selftest's `IOMMU_TEST_OP_MD_CHECK_IOTLB` (EINVAL
    /// when entry ID of the nested HWPT's mock IOTLB holds another value).
    func checkIOTLB(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("check_iotlb HWPT ID VALUE") }
        let fd = try session.context(step)
        try SelftestIOCTL.checkIOTLB(session.seam, fd, hwpt: try session.objectID(step.words[0]),
                                     iotlbID: UInt32(truncatingIfNeeded: try session.number(step.words[1])),
                                     value: UInt32(truncatingIfNeeded: try session.number(step.words[2])), fileID: #fileID, line: step.line)
        return Outcome()
    }
}

extension ScenarioExecutor {
    /// `viommu NAME HWPT DEVICE [type=N] [flags=N] [data=PAYLOAD [data_len=N]]`:
    /// `IOMMU_VIOMMU_ALLOC` (type defaults to the selftest's 0xdeadbeef) with a payload's
    /// bytes as the driver's data, which the kernel writes its answer into. Binds NAME;
    /// outputs `id` and, read back from the data as the selftest driver lays it out,
    /// `out` (`out_data`), `offset` and `length` (the mmap region) as far as the data reaches.
    func allocateVIOMMU(_ step: Step, _ session: ScenarioSession) throws -> Outcome {
        guard step.words.count >= 3 else { throw session.fail("viommu NAME HWPT DEVICE") }
        let fd = try session.context(step)
        let data = try session.dataPayload(step)
        let id = try IOMMUFDIOCTL.viommuAlloc(session.seam, fd, device: try session.objectID(step.words[2]), hwpt: try session.objectID(step.words[1]),
                                              type: UInt32(truncatingIfNeeded: try session.argument(step, "type", default: UInt64(IOMMU_VIOMMU_TYPE_SELFTEST))),
                                              flags: UInt32(truncatingIfNeeded: try session.argument(step, "flags", default: 0)),
                                              data: data, fileID: #fileID, line: step.line)
        session.bind(step.words[0], id: id, context: step.arguments["in"] ?? ScenarioSession.defaultContext)
        var outputs = ["id": "\(id)"]
        // What the selftest driver wrote back into its data (struct iommu_viommu_selftest).
        if let data {
            if data.count >= 8 { outputs["out"] = ScenarioSession.hex(UInt64(data.load(fromByteOffset: 4, as: UInt32.self))) }
            if data.count >= 16 { outputs["offset"] = ScenarioSession.hex(data.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
            if data.count >= 24 { outputs["length"] = ScenarioSession.hex(data.loadUnaligned(fromByteOffset: 16, as: UInt64.self)) }
        }
        return Outcome(outputs: outputs)
    }
}
