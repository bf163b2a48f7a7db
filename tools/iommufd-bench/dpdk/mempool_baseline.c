/* The DPDK baseline of `iommufd-bench pool`: rte_mempool get/put in the same loops as
 * the Swift side. Built and run by the bench (cc + pkg-config libdpdk), with EAL
 * arguments --no-huge --no-pci. Prints one line per case: "<case> <ns per get+put of one object>". */
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

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int consumed = rte_eal_init(argc, argv);
    if (consumed < 0) { fprintf(stderr, "rte_eal_init failed\n"); return 1; }
    argc -= consumed; argv += consumed;
    long iterations = argc > 1 ? atol(argv[1]) : 10000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    unsigned cache_size = argc > 3 ? (unsigned)atoi(argv[3]) : 256;
    unsigned count = 8191, element = 2048;
    struct rte_mempool *cached = rte_mempool_create("cached", count, element, cache_size, 0, NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
    struct rte_mempool *uncached = rte_mempool_create("uncached", count, element, 0, 0, NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
    if (!cached || !uncached) { fprintf(stderr, "rte_mempool_create failed\n"); return 1; }
    struct rte_mempool_cache *cache = rte_mempool_default_cache(cached, rte_lcore_id());
    const char *names[4] = { "single_cache", "bulk32_cache", "single_nocache", "bulk32_nocache" };
    double results[4][64];
    for (int r = -1; r < rounds; r++) {  /* round -1 warms up */
        double values[4] = {
            single_round(cached, cache, iterations),
            bulk_round(cached, cache, iterations / 32, 32),
            single_round(uncached, NULL, iterations / 4),
            bulk_round(uncached, NULL, iterations / 32, 32),
        };
        if (r >= 0) for (int c = 0; c < 4; c++) results[c][r] = values[c];
    }
    for (int c = 0; c < 4; c++) {
        qsort(results[c], rounds, sizeof(double), compare);
        printf("%s %.3f\n", names[c], results[c][rounds / 2]);
    }
    printf("ops %s\n", rte_mempool_get_ops(cached->ops_index)->name);
    return 0;
}
