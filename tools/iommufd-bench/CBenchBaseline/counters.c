/* Counting heap allocations and Swift retain/release calls for `iommufd-bench pool`.
 *
 * malloc and friends are interposed by defining them in the executable (glibc's
 * __libc_* entry points do the work); retain/release through the Swift runtime's
 * replaceable entry points (_swift_retain and friends, live once the runtime's swizzling flag is set). Counting is on only between
 * ciommufd_bench_counting_begin() and _end(), on every thread. */
#include "CBenchBaseline.h"
#include <stddef.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_int counting;
static atomic_ullong allocations;
static atomic_ullong retains;
static atomic_ullong releases;

static inline void count_allocation(void) {
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

void *malloc(size_t size) { count_allocation(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { count_allocation(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { count_allocation(); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *aligned_alloc(size_t alignment, size_t size) { count_allocation(); return __libc_memalign(alignment, size); }
void *memalign(size_t alignment, size_t size) { count_allocation(); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    count_allocation();
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) return 12; /* ENOMEM */
    *out = pointer;
    return 0;
}

/* swift_retain/swift_release interposed: the executable's definitions win over
 * libswiftCore's for every call made by Swift code linked into it (the pool included).
 * Swift code calls them with the preserve_most convention on x86-64. */
#define _GNU_SOURCE
#include <dlfcn.h>
#define RUNTIME_CC __attribute__((preserve_most))
typedef void *(*retain_fn)(void *) RUNTIME_CC;
typedef void (*release_fn)(void *) RUNTIME_CC;
static retain_fn real_retain;
static release_fn real_release;

void *swift_retain(void *object) RUNTIME_CC;
void swift_release(void *object) RUNTIME_CC;

void *swift_retain(void *object) {
    if (object && atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add_explicit(&retains, 1, memory_order_relaxed);
    if (!real_retain) real_retain = (retain_fn)dlsym(RTLD_NEXT, "swift_retain");
    return real_retain(object);
}
void swift_release(void *object) {
    if (object && atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add_explicit(&releases, 1, memory_order_relaxed);
    if (!real_release) real_release = (release_fn)dlsym(RTLD_NEXT, "swift_release");
    real_release(object);
}

typedef void *(*retain_n_fn)(void *, uint32_t) RUNTIME_CC;
typedef void (*release_n_fn)(void *, uint32_t) RUNTIME_CC;
static retain_n_fn real_retain_n;
static release_n_fn real_release_n;
void *swift_retain_n(void *object, uint32_t n) RUNTIME_CC;
void swift_release_n(void *object, uint32_t n) RUNTIME_CC;

void *swift_retain_n(void *object, uint32_t n) {
    if (object && atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add_explicit(&retains, n, memory_order_relaxed);
    if (!real_retain_n) real_retain_n = (retain_n_fn)dlsym(RTLD_NEXT, "swift_retain_n");
    return real_retain_n(object, n);
}
void swift_release_n(void *object, uint32_t n) {
    if (object && atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add_explicit(&releases, n, memory_order_relaxed);
    if (!real_release_n) real_release_n = (release_n_fn)dlsym(RTLD_NEXT, "swift_release_n");
    real_release_n(object, n);
}

void ciommufd_bench_counting_install(void) {}

void ciommufd_bench_counting_begin(void) {
    atomic_store(&allocations, 0);
    atomic_store(&retains, 0);
    atomic_store(&releases, 0);
    atomic_store(&counting, 1);
}

struct ciommufd_bench_counts ciommufd_bench_counting_end(void) {
    atomic_store(&counting, 0);
    struct ciommufd_bench_counts counts = {
        .allocations = atomic_load(&allocations), .retains = atomic_load(&retains), .releases = atomic_load(&releases),
    };
    return counts;
}
