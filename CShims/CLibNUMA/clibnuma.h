// libnuma (Debian's libnuma-dev): memory policy and page placement queries.
// Only LinuxSystem calls these, through the SystemInterface seam.
#ifndef CLIBNUMA_H
#define CLIBNUMA_H
#include <numaif.h>
#include <errno.h>

// mbind(2) through libnuma with a one-word node mask (nodes 0-63).
static inline long clibnuma_mbind(void *start, unsigned long length, int mode,
                                  unsigned long node_mask, unsigned flags) {
    return mbind(start, length, mode, node_mask ? &node_mask : 0,
                 node_mask ? sizeof(node_mask) * 8 + 1 : 0, flags);
}

// move_pages(2) through libnuma with no target nodes: reports where each page is.
static inline long clibnuma_query_pages(unsigned long count, void **pages, int *status) {
    return move_pages(0, count, pages, 0, status, 0);
}

static inline int clibnuma_errno(void) { return errno; }

#endif
