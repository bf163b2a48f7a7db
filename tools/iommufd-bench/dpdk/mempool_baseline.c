/* The DPDK baseline of `iommufd-bench pool`: rte_mempool get/put in the same loops as
 * the Swift side. Built and run by the bench (cc -O3 -march=native + pkg-config libdpdk),
 * with EAL arguments --no-huge --no-pci -l <cpu>.
 *
 * It runs one round at a time so that the bench can interleave DPDK rounds with its own
 * on the same CPU (both sides then see the same machine state): for every line read
 * from standard input it runs one round of every case and prints
 * "<case> <ns per get+put of one object>" lines followed by "end". */
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double single_round(struct rte_mempool *pool, struct rte_mempool_cache *cache, long iterations) {
    void *object;
    double start = now_ns();
    for (long i = 0; i < iterations; i++) {
        if (rte_mempool_generic_get(pool, &object, 1, cache) != 0) abort();
        rte_mempool_generic_put(pool, &object, 1, cache);
    }
    return (now_ns() - start) / iterations;
}

static double bulk_round(struct rte_mempool *pool, struct rte_mempool_cache *cache, long iterations, unsigned n) {
    void *objects[64];
    double start = now_ns();
    for (long i = 0; i < iterations; i++) {
        if (rte_mempool_generic_get(pool, objects, n, cache) != 0) abort();
        rte_mempool_generic_put(pool, objects, n, cache);
    }
    return (now_ns() - start) / ((double)iterations * n);
}

int main(int argc, char **argv) {
    int consumed = rte_eal_init(argc, argv);
    if (consumed < 0) { fprintf(stderr, "rte_eal_init failed\n"); return 1; }
    argc -= consumed; argv += consumed;
    long iterations = argc > 1 ? atol(argv[1]) : 10000000;
    unsigned cache_size = argc > 2 ? (unsigned)atoi(argv[2]) : 256;
    unsigned count = 8191, element = 2048;
    struct rte_mempool *cached = rte_mempool_create("cached", count, element, cache_size, 0, NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
    struct rte_mempool *uncached = rte_mempool_create("uncached", count, element, 0, 0, NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
    if (!cached || !uncached) { fprintf(stderr, "rte_mempool_create failed\n"); return 1; }
    struct rte_mempool_cache *cache = rte_mempool_default_cache(cached, rte_lcore_id());
    printf("ops %s\n", rte_mempool_get_ops(cached->ops_index)->name);
    printf("end\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        printf("single_cache %.4f\n", single_round(cached, cache, iterations));
        printf("bulk32_cache %.4f\n", bulk_round(cached, cache, iterations / 32, 32));
        printf("single_nocache %.4f\n", single_round(uncached, NULL, iterations / 4));
        printf("bulk32_nocache %.4f\n", bulk_round(uncached, NULL, iterations / 32, 32));
        printf("end\n");
        fflush(stdout);
    }
    return 0;
}
