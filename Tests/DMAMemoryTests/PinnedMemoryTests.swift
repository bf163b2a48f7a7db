import DMAMemory
import IOMMUFD
import MockKernel
import SystemPackage
import Testing

@Suite("Backing stores, prefault and NUMA placement")
struct PinnedMemoryTests {
    @Test("a 2 MiB hugetlb memfd takes pages from the pool and gives them back")
    func hugetlbMemfd() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 4])
        do {
            let memory = try PinnedMemory(length: 3 << 20, backing: .exactly(.hugetlbMemfd(.huge2MiB)), system: kernel)
            #expect(memory.length == 4 << 20, "rounded up to whole hugepages")
            #expect(memory.store == .hugetlbMemfd(.huge2MiB) && memory.fallbacks.isEmpty)
            #expect(UInt(bitPattern: memory.address) % UInt(twoMiB) == 0)
            #expect(kernel.freeHugePages(twoMiB) == 2)
            #expect(kernel.trace.map(\.name).contains("madvise"), "pages are faulted in")
        }
        #expect(kernel.freeHugePages(twoMiB) == 4)
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("missing hugepages are a typed error that says how to reserve them, and nothing is left behind")
    func hugePagesMissing() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 1])
        #expect {
            _ = try PinnedMemory(length: 4 << 20, backing: .exactly(.hugetlbMemfd(.huge2MiB)), system: kernel)
        } throws: { error in
            guard case DMAMemoryError.hugePagesUnavailable(.huge2MiB, needed: 2, available: 1) = error else { return false }
            return "\(error)".contains("nr_hugepages")
        }
        #expect {
            _ = try PinnedMemory(length: 1 << 30, backing: .exactly(.hugetlbMemfd(.huge1GiB)), system: kernel)
        } throws: { error in
            guard case DMAMemoryError.hugePageSizeUnsupported(.huge1GiB) = error else { return false }
            return true
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("the pool running short between the check and mmap is still the hugepage error")
    func hugePagesTakenMeanwhile() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 2])
        kernel.failNthCall(1, with: .noMemory, operation: "mmap")
        #expect {
            _ = try PinnedMemory(length: 4 << 20, backing: .exactly(.hugetlbMemfd(.huge2MiB)), system: kernel)
        } throws: { error in
            if case DMAMemoryError.hugePagesUnavailable = error { return true }
            return false
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("a fallback is never silent: it is reported and recorded on the memory")
    func visibleFallback() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 0])
        let log = FallbackLog()
        let policy = BackingPolicy.preferring([.hugetlbMemfd(.huge1GiB), .hugetlbMemfd(.huge2MiB), .anonymous(transparentHugePages: true)],
                                              onFallback: { log.record($0) })
        let memory = try PinnedMemory(length: 4 << 20, backing: policy, system: kernel)
        #expect(memory.store == .anonymous(transparentHugePages: true))
        #expect(log.entries.count == 2 && memory.fallbacks.count == 2)
        if case .hugePageSizeUnsupported(.huge1GiB) = memory.fallbacks[0].reason {} else { Issue.record("first: \(memory.fallbacks[0])") }
        if case .hugePagesUnavailable(.huge2MiB, 2, 0) = memory.fallbacks[1].reason {} else { Issue.record("second: \(memory.fallbacks[1])") }
        #expect(kernel.trace.contains { $0.name == "madvise" }, "MADV_HUGEPAGE and the prefault")
    }

    @Test("errors no other store can fix are not fallen back from")
    func noFallbackForOtherErrors() throws {
        let kernel = memoryMachine()
        kernel.failNthCall(1, with: .noMemory, operation: "madvise")
        let log = FallbackLog()
        #expect {
            _ = try PinnedMemory(length: 1 << 20, backing: .preferring([.memfd, .anonymous(transparentHugePages: false)], onFallback: { log.record($0) }), system: kernel)
        } throws: { error in
            guard case DMAMemoryError.prefaultFailed(.noMemory, populated: 0, length: 1 << 20) = error else { return false }
            return true
        }
        #expect(log.entries.isEmpty)
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("hugetlbfs: a file on the mount, unlinked at once; a missing mount is a typed error")
    func hugetlbfs() throws {
        let kernel = memoryMachine(hugePages: [twoMiB: 2], hugetlbfs: ["/dev/hugepages": twoMiB])
        do {
            let memory = try PinnedMemory(length: 2 << 20, backing: .exactly(.hugetlbfs(.huge2MiB)), system: kernel)
            #expect(memory.fileDescriptor != nil && memory.length == 2 << 20)
            #expect(kernel.trace.map(\.name).contains("unlink"))
            #expect(kernel.freeHugePages(twoMiB) == 1)
        }
        #expect(kernel.freeHugePages(twoMiB) == 2)
        #expect {
            _ = try PinnedMemory(length: 2 << 20, backing: .exactly(.hugetlbfs(.huge2MiB, mountPoint: "/mnt/huge")), system: kernel)
        } throws: { error in
            guard case DMAMemoryError.noHugetlbfsMount(.huge2MiB, "/mnt/huge") = error else { return false }
            return true
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("prefault reports progress chunk by chunk up to the whole length")
    func prefaultProgress() throws {
        let kernel = memoryMachine(memlock: nil)
        let progress = FallbackLogProgress()
        let memory = try PinnedMemory(length: 200 << 20, backing: .exactly(.anonymous(transparentHugePages: false)), system: kernel,
                                      progress: { progress.record($0, $1) })
        #expect(progress.steps == [64 << 20, 128 << 20, 192 << 20, 200 << 20].map { ($0, 200 << 20) }.map { "\($0.0)/\($0.1)" })
        _ = memory
    }

    @Test("NUMA: bound to the requested node and verified; an offline node is a typed error")
    func numaPlacement() throws {
        let kernel = memoryMachine(nodes: 2)
        let memory = try PinnedMemory(length: 1 << 20, backing: .exactly(.memfd), placement: .node(1, strict: true), system: kernel)
        #expect(memory.placement.isOnRequestedNode)
        #expect(memory.placement.pagesPerNode == [1: 256] && memory.placement.sampledPages == 256)
        #expect {
            _ = try PinnedMemory(length: 1 << 20, backing: .exactly(.memfd), placement: .node(3, strict: true), system: kernel)
        } throws: { error in
            guard case DMAMemoryError.numaNodeUnavailable(3, online: [0, 1]) = error else { return false }
            return true
        }
        let anywhere = try PinnedMemory(length: 64 << 20, backing: .exactly(.memfd), system: kernel)
        #expect(anywhere.placement.requestedNode == nil && anywhere.placement.sampledPages == 512, "large regions are sampled")
    }

    @Test("strict placement fails when pages land elsewhere, and frees them")
    func misplaced() throws {
        let kernel = memoryMachine(nodes: 2)
        // The kernel accepts the policy but the pages stay on node 0 (node 1 ran out).
        kernel.failNthCall(1, with: .noMemory, operation: "mbind")
        #expect {
            _ = try PinnedMemory(length: 1 << 20, backing: .exactly(.memfd), placement: .node(1, strict: true), system: kernel)
        } throws: { error in
            guard case DMAMemoryError.system(.mbind, .noMemory) = error else { return false }
            return true
        }
        #expect(kernel.leaks.isEmpty, "\(kernel.leaks)")
    }

    @Test("every failing call while making memory leaves nothing behind", arguments: [
        BackingStore.memfd, .hugetlbMemfd(.huge2MiB), .hugetlbfs(.huge2MiB), .anonymous(transparentHugePages: true),
    ])
    func failEveryCall(store: BackingStore) throws {
        // A clean run names the calls; each one but munmap (a failing munmap leaks in any program) then fails in turn.
        let clean = memoryMachine(hugePages: [twoMiB: 2], hugetlbfs: ["/dev/hugepages": twoMiB], nodes: 2)
        _ = try PinnedMemory(length: 2 << 20, backing: .exactly(store), placement: .node(1, strict: true), system: clean)
        let calls = clean.trace.map(\.name)
        #expect(calls.count >= 5)
        for (index, name) in calls.enumerated() where name != "munmap" {
            let n = index + 1
            let kernel = memoryMachine(hugePages: [twoMiB: 2], hugetlbfs: ["/dev/hugepages": twoMiB], nodes: 2)
            kernel.failNthCall(n, with: .noMemory)
            _ = try? PinnedMemory(length: 2 << 20, backing: .exactly(store), placement: .node(1, strict: true), system: kernel)
            #expect(kernel.leaks.isEmpty, "\(store), call \(n) (\(name)): \(kernel.leaks)")
            #expect(kernel.freeHugePages(twoMiB) == 2, "\(store), call \(n): hugepages returned")
        }
    }
}

final class FallbackLogProgress: @unchecked Sendable {
    private(set) var steps: [String] = []
    func record(_ done: Int, _ total: Int) { steps.append("\(done)/\(total)") }
}
