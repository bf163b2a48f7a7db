import IOMMUFD

/// How the probes write one step's result: the same words on the kernel and on the mock,
/// so that their lines can be compared.
enum ProbeOutcome {
    /// `ok`, or the errno's name.
    static func of(_ body: () throws(IOMMUError) -> Void) -> String {
        do throws(IOMMUError) { try body(); return "ok" } catch { return ErrnoName.name(of: error.errno) }
    }

    /// The handled count of an invalidation, or the errno's name with the count the kernel
    /// wrote back.
    static func invalidation(_ body: () throws(IOMMUError) -> Int) -> String {
        do throws(IOMMUError) { return String(try body()) } catch {
            return ErrnoName.name(of: error.errno) + " handled \(error.context.handledCount.map(String.init) ?? "?")"
        }
    }
}
