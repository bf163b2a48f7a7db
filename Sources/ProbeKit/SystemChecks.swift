import IOMMUFD
import SystemPackage

/// The system checks S1-S19 of REFERENCE.md §3.
struct SystemChecks {
    let files: SystemFiles
    let iommuPath: String

    func run(into report: inout ProbeReport) {
        let release = files.text("/proc/sys/kernel/osrelease")
        report.add("S1", .info, "kernel \(release ?? "unknown")", evidence: "/proc/sys/kernel/osrelease = \(release ?? "(unreadable)")")
        kernelConfiguration(release: release, into: &report)
        let iommufd = deviceNode(into: &report)
        vfioNodes(into: &report)
        firmwareTables(into: &report)
        let iommuEnabled = iommuUnits(into: &report)
        bootArguments(into: &report)
        if iommuEnabled { VTdCapabilities(files: files).report(into: &report) }
        amdUnits(into: &report)
        interruptRemapping(iommuEnabled: iommuEnabled, into: &report)
        unsafeSwitches(into: &report)
        vfioParameters(into: &report)
        memlock(into: &report)
        if let iommufd { iommufdChecks(iommufd, into: &report) }
        hugepages(into: &report)
        numa(into: &report)
    }

    // MARK: S2 kernel configuration

    static let configOptions = [
        "CONFIG_IOMMUFD", "CONFIG_VFIO_DEVICE_CDEV", "CONFIG_IOMMUFD_VFIO_CONTAINER", "CONFIG_VFIO_GROUP",
        "CONFIG_VFIO_CONTAINER", "CONFIG_VFIO_NOIOMMU", "CONFIG_IRQ_REMAP", "CONFIG_IOMMUFD_TEST",
    ]

    func kernelConfiguration(release: String?, into report: inout ProbeReport) {
        let path = "/boot/config-\(release ?? "unknown")"
        guard let text = files.text(path) else {
            // Without the config file: iommufd built in or loaded always shows in /sys/module.
            if files.list("/sys/module/iommufd") == nil {
                report.add("S2", .fail, "kernel has no iommufd (not built in, not loaded)",
                           evidence: "\(path) is missing; /sys/module/iommufd does not exist",
                           fix: "`modprobe iommufd` if it is a module; otherwise this kernel lacks CONFIG_IOMMUFD (so do Debian's 6.1, 6.12 and 7.3): use the legacy VFIO type1 backend, or boot a kernel with CONFIG_IOMMUFD=y and CONFIG_VFIO_DEVICE_CDEV=y (hw-tests/vm/kernel.fragment)")
            } else {
                report.add("S2", .pass, "iommufd is in the kernel", evidence: "\(path) is missing; /sys/module/iommufd exists")
            }
            return
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            for option in Self.configOptions {
                if line.hasPrefix(option + "=") { values[option] = String(line.dropFirst(option.count + 1)) }
            }
        }
        let evidence = Self.configOptions.map { "\($0)=\(values[$0] ?? "n")" }.joined(separator: " ")
        if values["CONFIG_IOMMUFD"] == nil {
            report.add("S2", .fail, "kernel built without CONFIG_IOMMUFD", evidence: "\(path): \(evidence)",
                       fix: "Debian's kernels (6.1, 6.12, 7.3) are built without CONFIG_IOMMUFD: use the legacy VFIO type1 backend (/dev/vfio/vfio), or boot a kernel with CONFIG_IOMMUFD=y and CONFIG_VFIO_DEVICE_CDEV=y (hw-tests/vm/kernel.fragment lists a working set)")
        } else if values["CONFIG_IOMMUFD_TEST"] == "y" {
            report.add("S2", .warn, "kernel has iommufd, and its selftest mock (CONFIG_IOMMUFD_TEST) is built in", evidence: "\(path): \(evidence)",
                       fix: "CONFIG_IOMMUFD_TEST is for test kernels; do not run it on a production host")
        } else {
            report.add("S2", .pass, "kernel built with iommufd", evidence: "\(path): \(evidence)")
        }
    }

    // MARK: S3-S5 device nodes

    func deviceNode(into report: inout ProbeReport) -> IOMMUFD? {
        do {
            let iommufd = try IOMMUFD(path: iommuPath, system: files.system)
            report.add("S3", .pass, "\(iommuPath) opens read-write", evidence: "open(\(iommuPath), O_RDWR|O_CLOEXEC) = fd \(iommufd.fileDescriptor)")
            return iommufd
        } catch {
            let fix = [error.explanation?.meaning, error.explanation?.fix].compactMap { $0 }.joined(separator: " ")
            report.add("S3", error.errno == .permissionDenied ? .warn : .fail, "\(iommuPath) cannot be opened",
                       evidence: "open(\(iommuPath)) failed: \(error.errno.description) (errno \(error.errno.rawValue))", fix: fix)
            return nil
        }
    }

    func vfioNodes(into report: inout ProbeReport) {
        if let cdevs = files.list("/dev/vfio/devices") {
            report.add("S4", .pass, "VFIO device cdevs are supported", evidence: "/dev/vfio/devices: \(cdevs.isEmpty ? "(empty)" : cdevs.joined(separator: " "))")
        } else {
            report.add("S4", .warn, "no VFIO device cdevs (/dev/vfio/devices missing)", evidence: "/dev/vfio/devices does not exist",
                       fix: "only the legacy group path is available; CONFIG_VFIO_DEVICE_CDEV=y and a device bound to vfio-pci create /dev/vfio/devices/vfioN")
        }
        let groups = files.list("/dev/vfio") ?? []
        let container = groups.contains("vfio")
        report.add("S5", .info, container ? "legacy container /dev/vfio/vfio present" : "no legacy container /dev/vfio/vfio",
                   evidence: "/dev/vfio: \(groups.isEmpty ? "(missing or empty)" : groups.joined(separator: " "))")
    }

    // MARK: S6-S8 IOMMU hardware and boot

    func firmwareTables(into report: inout ProbeReport) {
        let tables = files.list("/sys/firmware/acpi/tables") ?? []
        let found = ["DMAR", "IVRS", "IORT"].filter(tables.contains)
        if found.isEmpty {
            report.add("S6", .fail, "no IOMMU table in the firmware", evidence: "/sys/firmware/acpi/tables has no DMAR, IVRS or IORT",
                       fix: "IOMMU disabled in BIOS or not supported: enable VT-d (Intel) or AMD-Vi/IOMMU in the firmware setup; in a VM, give it a vIOMMU (QEMU: -device intel-iommu,intremap=on)")
        } else {
            report.add("S6", .pass, "firmware describes an IOMMU", evidence: "/sys/firmware/acpi/tables: \(found.joined(separator: " "))")
        }
    }

    func iommuUnits(into report: inout ProbeReport) -> Bool {
        let units = files.list("/sys/class/iommu") ?? []
        let groups = files.list("/sys/kernel/iommu_groups") ?? []
        if !units.isEmpty && !groups.isEmpty {
            report.add("S7", .pass, "IOMMU enabled: \(units.count) unit(s), \(groups.count) group(s)",
                       evidence: "/sys/class/iommu: \(units.joined(separator: " ")); /sys/kernel/iommu_groups: \(groups.count) entries")
            return true
        }
        let vendor = files.field("vendor_id", in: "/proc/cpuinfo")
        let fix: String
        switch vendor {
        case "GenuineIntel": fix = "add intel_iommu=on to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot); Debian's default leaves VT-d off"
        case "AuthenticAMD": fix = "AMD-Vi is on by default when the firmware enables it: check the BIOS IOMMU option and that amd_iommu=off is not on the command line"
        default: fix = "enable the IOMMU in the firmware and on the kernel command line (intel_iommu=on / amd_iommu=on, or iommu.passthrough=0 on Arm)"
        }
        report.add("S7", .fail, "no IOMMU is enabled", evidence: "/sys/class/iommu: \(units.isEmpty ? "empty" : units.joined(separator: " ")); /sys/kernel/iommu_groups: \(groups.count) entries; CPU vendor \(vendor ?? "unknown")", fix: fix)
        return false
    }

    func bootArguments(into report: inout ProbeReport) {
        let commandLine = files.text("/proc/cmdline") ?? ""
        let relevant = commandLine.split(separator: " ").filter { word in
            ["intel_iommu=", "amd_iommu=", "iommu=", "iommu.passthrough=", "iommu.strict=", "intremap=", "pci=", "pcie_acs_override", "vfio"]
                .contains { word.hasPrefix($0) }
        }
        let evidence = "/proc/cmdline: " + (relevant.isEmpty ? "(no IOMMU arguments)" : relevant.joined(separator: " "))
        if relevant.contains("intremap=off") {
            report.add("S8", .warn, "interrupt remapping is switched off on the command line", evidence: evidence,
                       fix: "remove intremap=off: without interrupt remapping VFIO refuses devices unless allow_unsafe_interrupts=1, which lets a device inject arbitrary interrupts")
        } else if relevant.contains(where: { $0.hasPrefix("pcie_acs_override") }) {
            report.add("S8", .warn, "pcie_acs_override is in use (an out-of-tree patch that fakes isolation)", evidence: evidence,
                       fix: "devices in split groups are not really isolated; prefer a slot whose group is viable")
        } else {
            report.add("S8", .info, "boot arguments", evidence: evidence)
        }
    }

    // MARK: S11-S12 interrupts and unsafe switches

    func interruptRemapping(iommuEnabled: Bool, into report: inout ProbeReport) {
        guard iommuEnabled else {
            report.add("S11", .skip, "interrupt remapping not checked", evidence: "no IOMMU is enabled (S7)")
            return
        }
        let interrupts = files.text("/proc/interrupts") ?? ""
        let remapped = interrupts.contains("IR-PCI-MSI") || interrupts.contains("IR-IO-APIC")
        let unsafe = files.text("/sys/module/iommufd/parameters/allow_unsafe_interrupts") == "Y"
            || files.text("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts") == "Y"
        if remapped {
            report.add("S11", .pass, "interrupt remapping is active", evidence: "/proc/interrupts has IR-PCI-MSI / IR-IO-APIC chips")
        } else if unsafe {
            report.add("S11", .warn, "no interrupt remapping; allowed only because allow_unsafe_interrupts=Y", evidence: "/proc/interrupts has no IR-* chips",
                       fix: "enable interrupt remapping (firmware, intremap=on; in QEMU intel-iommu,intremap=on)")
        } else {
            report.add("S11", .warn, "interrupt remapping not seen (best effort; --deep binding tells for sure: EPERM)", evidence: "/proc/interrupts has no IR-* chips",
                       fix: "enable interrupt remapping (firmware x2APIC/IR, no intremap=off; in QEMU -device intel-iommu,intremap=on)")
        }
    }

    func unsafeSwitches(into report: inout ProbeReport) {
        let switches = [
            "/sys/module/iommufd/parameters/allow_unsafe_interrupts",
            "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
            "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode",
        ]
        let on = switches.filter { files.text($0) == "Y" }
        let noiommuNodes = (files.list("/dev/vfio") ?? []).filter { $0.hasPrefix("noiommu-") }
            + (files.list("/dev/vfio/devices") ?? []).filter { $0.hasPrefix("noiommu-") }
        if on.isEmpty && noiommuNodes.isEmpty {
            report.add("S12", .pass, "no unsafe VFIO switches", evidence: switches.map { "\($0)=\(files.text($0) ?? "absent")" }.joined(separator: " "))
        } else {
            // A no-IOMMU cdev taints the kernel when it registers (TAINT_USER, bit 6 'U',
            // vfio_main.c:369-373): the device's DMA reaches all of memory untranslated.
            let taint = files.text("/proc/sys/kernel/tainted").flatMap { UInt64($0) }
            let tainted = taint.map { $0 & (1 << 6) != 0 ? " kernel tainted (U, /proc/sys/kernel/tainted=\($0))" : "" } ?? ""
            let mode = noiommuNodes.isEmpty ? "" : " no-IOMMU mode: devices DMA to physical addresses with nothing to stop them;"
            report.add("S12", .warn, "CRITICAL: unsafe VFIO switches are on;" + mode + tainted,
                       evidence: (on.map { "\($0)=Y" } + noiommuNodes.map { "/dev/vfio/…/\($0)" }).joined(separator: " "),
                       fix: "turn them off (modprobe options or the kernel command line): with them a device can corrupt memory or inject interrupts")
        }
    }

    // MARK: S14-S17 limits and iommufd

    func memlock(into report: inout ProbeReport) {
        let hasIPCLock = ProcessCapabilities(system: files.system)?.hasIPCLock ?? false
        let limit = try? files.system.memoryLockLimit()
        let current = limit?.current
        let text = current.map { "\($0 / 1024) KiB" } ?? "unlimited"
        let evidence = "RLIMIT_MEMLOCK soft \(text); CAP_IPC_LOCK \(hasIPCLock ? "yes" : "no"); VmLck \(files.field("VmLck", in: "/proc/self/status") ?? "?"); VmPin \(files.field("VmPin", in: "/proc/self/status") ?? "?")"
        if hasIPCLock || current == nil || current! >= 64 << 20 {
            report.add("S14", .pass, "memlock budget is enough for DMA buffers", evidence: evidence)
        } else {
            report.add("S14", .warn, "memlock limit \(text) is below 64 MiB: mapping more DMA memory fails with ENOMEM", evidence: evidence,
                       fix: "raise it: `ulimit -l unlimited`, `LimitMEMLOCK=infinity` in the systemd unit, a memlock line in /etc/security/limits.conf, or `setcap cap_ipc_lock+ep <binary>`")
        }
    }

    func iommufdChecks(_ iommufd: IOMMUFD, into report: inout ProbeReport) {
        if let mode = try? iommufd.accountingMode() {
            report.add("S15", .info, "pinned pages are charged per \(mode == .user ? "user" : "process")", evidence: "IOMMU_OPTION RLIMIT_MODE = \(mode.rawValue)")
        }
        do {
            let supported = try iommufd.supportedCommands()
            let missing = IOMMUOperation.iommufdCommands.filter { !supported.contains($0) }
            report.add("S16", .info, "\(supported.count) of \(IOMMUOperation.iommufdCommands.count) iommufd commands supported",
                       evidence: IOMMUOperation.iommufdCommands.map { "\($0.name)=\(supported.contains($0) ? "yes" : "no")" }.joined(separator: " "),
                       fix: missing.isEmpty ? nil : "missing: \(missing.map(\.name).joined(separator: ", ")) (a newer kernel adds them)")
        } catch {
            report.add("S16", .fail, "the command probe failed", evidence: error.description)
        }
        do {
            let ioas = try iommufd.allocateIOAS()
            let ranges = try ioas.iovaRanges()
            try ioas.destroy()
            report.add("S17", .pass, "IOAS alloc, IOVA ranges and destroy work",
                       evidence: "ranges \(ranges.ranges.map(\.description).joined(separator: " ")) alignment \(ranges.alignment)")
        } catch {
            report.add("S17", .fail, "IOAS round trip failed", evidence: error.description, fix: error.explanation?.fix)
        }
    }

    // MARK: S18-S19 memory

    func hugepages(into report: inout ProbeReport) {
        let sizes = (files.list("/sys/kernel/mm/hugepages") ?? []).filter { $0.hasPrefix("hugepages-") }
        let pools = sizes.map { size -> String in
            let base = "/sys/kernel/mm/hugepages/\(size)"
            return "\(size.dropFirst("hugepages-".count)): \(files.text(base + "/free_hugepages") ?? "?") free of \(files.text(base + "/nr_hugepages") ?? "?")"
        }
        let thp = files.text("/sys/kernel/mm/transparent_hugepage/enabled") ?? "absent"
        report.add("S18", .info, sizes.isEmpty ? "no hugetlb pools" : "hugetlb pools: \(pools.joined(separator: "; "))",
                   evidence: "/sys/kernel/mm/hugepages: \(sizes.joined(separator: " ")); THP \(thp)")
    }

    func numa(into report: inout ProbeReport) {
        let online = files.text("/sys/devices/system/node/online")
        report.add("S19", .info, online.map { "NUMA nodes online: \($0)" } ?? "no NUMA information", evidence: "/sys/devices/system/node/online = \(online ?? "absent")")
    }
}
