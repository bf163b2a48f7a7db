/* The process generation (see ciommufd_fork.h). */
#include <pthread.h>
#include <stdatomic.h>
#include "ciommufd_fork.h"

static _Atomic unsigned long generation;
static pthread_once_t watching = PTHREAD_ONCE_INIT;

/* Runs in the child of fork(), which has one thread: async-signal-safe. */
static void forked_child(void) {
    atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
}

static void install(void) {
    pthread_atfork(0, 0, forked_child);
}

unsigned long ciommufd_watch_forks(void) {
    pthread_once(&watching, install);
    return atomic_load_explicit(&generation, memory_order_relaxed);
}

unsigned long ciommufd_process_generation(void) {
    return atomic_load_explicit(&generation, memory_order_relaxed);
}
