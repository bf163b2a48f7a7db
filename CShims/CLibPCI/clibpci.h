/* libpci (pciutils) for Swift: Debian's libpci-dev. Swift cannot call C variadic
 * functions, so the name lookups and the silent message handlers are wrapped here. */
#ifndef CLIBPCI_H
#define CLIBPCI_H

#include <pci/pci.h>

static inline char *clibpci_vendor_name(struct pci_access *access, char *buffer, int size, unsigned vendor) {
    return pci_lookup_name(access, buffer, size, PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS, vendor);
}

static inline char *clibpci_device_name(struct pci_access *access, char *buffer, int size, unsigned vendor, unsigned device) {
    return pci_lookup_name(access, buffer, size, PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS, vendor, device);
}

static inline char *clibpci_class_name(struct pci_access *access, char *buffer, int size, unsigned class_id) {
    return pci_lookup_name(access, buffer, size, PCI_LOOKUP_CLASS | PCI_LOOKUP_NO_NUMBERS, class_id);
}

static inline void clibpci_silent(char *message, ...) { (void)message; }

/* Warnings and debug output go nowhere (the caller reports what it could not read). */
static inline void clibpci_quiet(struct pci_access *access) {
    access->warning = clibpci_silent;
    access->debug = clibpci_silent;
}

/* Read sysfs from another root (a fake tree in tests): "<root>/devices/<bdf>/config". */
static inline int clibpci_set_sysfs_root(struct pci_access *access, const char *root) {
    return pci_set_param(access, "sysfs.path", (char *)root);
}

static const unsigned clibpci_access_sysfs = PCI_ACCESS_SYS_BUS_PCI;
static const unsigned clibpci_fill_ident = PCI_FILL_IDENT;
static const unsigned clibpci_fill_class = PCI_FILL_CLASS;
static const unsigned clibpci_fill_caps = PCI_FILL_CAPS;
static const unsigned clibpci_fill_ext_caps = PCI_FILL_EXT_CAPS;
static const unsigned clibpci_cap_extended = PCI_CAP_EXTENDED;

#endif
