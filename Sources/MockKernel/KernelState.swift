import IOMMUFDSystem
import SystemPackage

/// The page size of the modelled machine.
let pageSize: UInt64 = 4096
/// The largest IOVA alignment the kernel chooses on its own (HPAGE_SIZE with THP).
let hugePageSize: UInt64 = 2 * 1024 * 1024
/// The kernel's `ULONG_MAX` on 64-bit.
let ulongMax: UInt64 = .max

/// Everything the modelled kernel knows. A value type, so an operation can work on a
/// copy and be discarded whole when it fails: a failed ioctl changes nothing.
struct KernelState {
    var configuration: MockKernel.Configuration

    // Files and descriptors.
    var descriptors: [Int32: OpenDescriptor] = [:]
    var memoryFiles: [Int: MemoryFile] = [:]
    /// Dma-bufs vfio-pci exported, by a private id.
    var dmaBufs: [Int: MockDMABuf] = [:]
    var nextDMABufID = 1
    var nextMemoryFileID = 1
    /// Hugepages taken from each pool (page size → pages).
    var hugePagesInUse: [UInt64: Int] = [:]
    /// Files created under a hugetlbfs mount that still have a name: path → memory file.
    var hugetlbfsFiles: [String: Int] = [:]
    var contexts: [Int: IOMMUContext] = [:]
    var nextContextID = 1
    var vfio = VFIOState()

    // Memory mappings of the process (what `mmap` made).
    var areasOfMemory: [VirtualMemoryArea] = []
    var allocations: [UInt: MemoryAllocation] = [:]

    // Accounting against RLIMIT_MEMLOCK: two budgets, as in the kernel.
    /// `user->locked_vm`: iommufd's pins in the default per-user mode (pages.c:956-980).
    var userLockedPages: UInt64 = 0
    /// `mm->locked_vm`: iommufd's pins in per-process mode (`__account_locked_vm`, pages.c:983-1008)
    /// and type1's (`vfio_lock_acct`); `VmLck` in `/proc/self/status`.
    var mmLockedPages: UInt64 = 0
    /// `mm->pinned_vm`: every page iommufd pins, whatever the mode or capability; `VmPin`.
    var pinnedVMPages: UInt64 = 0
    /// Pages charged against the limit, in either budget.
    var chargedPages: UInt64 { userLockedPages + mmLockedPages }

    // Observability.
    var trace: [MockKernel.Call] = []
    /// The calls refused as not modelled (`ENOSYS`), in order.
    var unmodelledCalls: [IOMMUOperation] = []
    var faults: [MockKernel.FaultRule] = []
    var callCounts: [String: Int] = [:]
    var totalCalls = 0
    var descriptorsWithoutCloexec = 0
    /// Forks the model has continued through as the child (``MockKernel/continueAsForkedChild()``).
    var processGeneration: UInt = 0
    /// The processes not running now, by id (see ``switchToProcess(_:)``).
    var waitingProcesses: [Int32: ProcessState] = [:]
    /// An error to report after committing the partial effect of a call (iommufd's unmap).
    var errorAfterCommit: Errno?
    /// Storage to free once the call that released it has committed.
    var pendingFrees: [HostResource] = []

    init(configuration: MockKernel.Configuration) {
        self.configuration = configuration
    }

    /// Runs one call as a transaction: on failure nothing it did is kept, except what a
    /// handler commits on purpose through `errorAfterCommit`.
    mutating func run<Value>(_ name: String, _ body: (inout KernelState) throws(Errno) -> Value) throws(Errno) -> Value {
        if let injected = enter(name) {
            record(name, injected)
            throw injected
        }
        var scratch = self
        do throws(Errno) {
            let value = try body(&scratch)
            let deferred = scratch.errorAfterCommit
            scratch.errorAfterCommit = nil
            let frees = scratch.pendingFrees + scratch.releaseUnreferencedMemory()
            scratch.pendingFrees.removeAll()
            self = scratch
            for resource in frees { resource.release() }
            record(name, deferred)
            if let deferred { throw deferred }
            return value
        } catch {
            // A refusal as unmodelled is remembered even though the call's effects are not.
            if scratch.unmodelledCalls.count > unmodelledCalls.count { unmodelledCalls = scratch.unmodelledCalls }
            record(name, error)
            throw error
        }
    }

    /// The lowest free descriptor number, as the kernel hands them out.
    func lowestFreeDescriptor() -> Int32 {
        var candidate: Int32 = 3
        while descriptors[candidate] != nil { candidate += 1 }
        return candidate
    }
}

/// What an open descriptor refers to.
enum OpenDescriptor {
    case iommufd(contextID: Int)
    case memoryFile(id: Int)
    case eventCounter(value: UInt64)
    /// A dma-buf exported by vfio-pci.
    case dmaBuf(id: Int)
    /// The file of an iommufd event queue object (a vEVENTQ or a fault queue).
    case eventQueue(contextID: Int, objectID: UInt32)
    case regularFile(path: String, contents: [UInt8])
    /// `/dev/vfio/vfio`.
    case vfioContainer(id: Int)
    /// `/dev/vfio/<group>`.
    case vfioGroup(number: Int)
    /// A VFIO device descriptor (cdev or from a group).
    case vfioDevice(fileID: Int)
}

/// A memfd: a host memfd the model maps for `mmap` and pins for `MAP_FILE`.
struct MemoryFile {
    var name: String
    var size: UInt64 = 0
    /// The host memfd behind it (`-1` until it first needs pages: `ftruncate` or `mmap`).
    var hostDescriptor: Int32 = -1
    /// The model's own view of the host memfd (`capacity` bytes, for `pread`, `pwrite` and
    /// pinned `MAP_FILE` pages); 0 until the first `ftruncate` that gives it pages.
    var storage: UInt = 0
    var capacity: UInt64 = 0
    /// Open descriptors plus live mappings plus pins that keep it alive.
    var references = 0
    /// The page size of a hugetlb file (`MFD_HUGETLB` or hugetlbfs); 0 for ordinary pages.
    var hugePageSize: UInt64 = 0
    /// Hugepages taken from the pool for this file (reserved at `mmap`, returned when the file goes).
    var reservedHugePages = 0

    /// What the host gives back when the file goes: the model's view and the host memfd.
    var hostResources: [HostResource] {
        (storage != 0 ? [.mapping(storage, length: Int(capacity))] : []) + (hostDescriptor >= 0 ? [.descriptor(hostDescriptor)] : [])
    }
}

/// One `mmap` made through the model.
struct VirtualMemoryArea {
    var start: UInt64
    var length: UInt64
    var writable: Bool
    /// The allocation the area's memory belongs to (anonymous) or the memfd.
    var backing: Backing
    /// Whether its pages have been faulted in (`MADV_POPULATE_WRITE`, or a pin).
    var populated = false
    /// `MADV_HUGEPAGE` was given.
    var transparentHugePages = false
    /// The node an `mbind` policy put the area on (`nil`: the default policy, node 0).
    var numaNode: Int32?

    enum Backing: Equatable {
        case anonymous(allocationBase: UInt)
        case memoryFile(id: Int, offset: UInt64)
        /// A BAR of a mock PCI device, mapped through device file `fileID` (the BAR's storage
        /// lives as long as the model; the mapping keeps the device file open).
        case deviceMemory(fileID: Int)
    }

    var last: UInt64 { start + length - 1 }
}

/// Host memory behind the process's mappings, freed when no area uses it and no pin holds it.
struct MemoryAllocation {
    var byteCount: Int
    /// A heap block (anonymous memory) or a host mapping of a memfd (one of its views).
    var isMemoryFileView = false

    /// How the host gets it back.
    func resource(at base: UInt) -> HostResource {
        isMemoryFileView ? .mapping(base, length: byteCount) : .heap(base)
    }
}
