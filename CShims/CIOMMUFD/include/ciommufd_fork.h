/*
 * The process generation: a counter the child of every fork() increments
 * (pthread_atfork), so a handle made before a fork can tell, with one
 * relaxed load, that it is now used in another process. The kernel lets the
 * child of a fork act on the parent's iommufd and VFIO objects through the
 * inherited descriptors (they are the same open files); the toolkit refuses
 * instead, so that a child cannot unmap, destroy or reset what the parent
 * owns by accident. posix_spawn and vfork run no fork handlers, but exec
 * follows them at once.
 */
#ifndef CIOMMUFD_FORK_H
#define CIOMMUFD_FORK_H

/* Installs the fork handler (once per process) and answers the generation. */
unsigned long ciommufd_watch_forks(void);

/* The counter itself; only the fork handler writes it. Read it through
 * ciommufd_process_generation. */
extern unsigned long ciommufd_fork_counter;

/* The generation, for the hot path (inlined: one relaxed load);
 * ciommufd_watch_forks must have run. */
static inline __attribute__((always_inline)) unsigned long ciommufd_process_generation(void) {
    return __atomic_load_n(&ciommufd_fork_counter, __ATOMIC_RELAXED);
}

#endif
