/* The process generation (see ciommufd_fork.h). */
#include <pthread.h>
#include "ciommufd_fork.h"

unsigned long ciommufd_fork_counter;
static pthread_once_t watching = PTHREAD_ONCE_INIT;

/* Runs in the child of fork(), which has one thread: async-signal-safe. */
static void forked_child(void) {
    __atomic_fetch_add(&ciommufd_fork_counter, 1, __ATOMIC_RELAXED);
}

static void install(void) {
    pthread_atfork(0, 0, forked_child);
}

unsigned long ciommufd_watch_forks(void) {
    pthread_once(&watching, install);
    return ciommufd_process_generation();
}
