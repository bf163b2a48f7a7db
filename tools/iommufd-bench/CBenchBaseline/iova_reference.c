/* The C reference of `iommufd-bench iova`: the IOVAAllocator algorithm of
 * Sources/DMAMemory/IOVAAllocator.swift written in C, step for step: sorted free spans
 * carved first-fit, a quarantine list, and size classes of recycled starts searched in
 * order; double frees are detected the same way (binary search in the free spans, linear
 * in the quarantine and in the size class). */
#include "CBenchBaseline.h"
#include <stdlib.h>
#include <string.h>

struct span { uint64_t start, end; };
struct size_class { uint64_t size; uint64_t *starts; size_t count, capacity; };

struct ciommufd_iova_reference {
    struct span *free; size_t free_count, free_capacity;
    struct span *quarantine; size_t quarantine_count, quarantine_capacity;
    struct size_class *classes; size_t class_count, class_capacity;
    uint64_t alignment;
};

static void *grow(void *array, size_t *capacity, size_t element) {
    *capacity = *capacity ? *capacity * 2 : 16;
    return realloc(array, *capacity * element);
}

static uint64_t round_up(uint64_t value, uint64_t alignment) {
    uint64_t sum = value + alignment - 1;
    return sum < value ? (UINT64_MAX & ~(alignment - 1)) : (sum & ~(alignment - 1));
}

struct ciommufd_iova_reference *ciommufd_iova_reference_create(const uint64_t *starts, const uint64_t *lasts, size_t count, uint64_t alignment) {
    struct ciommufd_iova_reference *a = calloc(1, sizeof(*a));
    a->alignment = alignment < 4096 ? 4096 : alignment;
    for (size_t i = 0; i < count; i++) {
        uint64_t first = starts[i] > a->alignment ? starts[i] : a->alignment;
        uint64_t start = round_up(first, a->alignment);
        uint64_t end = lasts[i] == UINT64_MAX ? (UINT64_MAX & ~(a->alignment - 1)) : ((lasts[i] + 1) & ~(a->alignment - 1));
        if (first > lasts[i] || start >= end) continue;
        if (a->free_count == a->free_capacity) a->free = grow(a->free, &a->free_capacity, sizeof(struct span));
        a->free[a->free_count++] = (struct span){ start, end };
    }
    return a;
}

void ciommufd_iova_reference_destroy(struct ciommufd_iova_reference *a) {
    for (size_t i = 0; i < a->class_count; i++) free(a->classes[i].starts);
    free(a->classes); free(a->free); free(a->quarantine); free(a);
}

static uint64_t natural_alignment(const struct ciommufd_iova_reference *a, uint64_t length) {
    if (length >= (1ULL << 30)) return a->alignment > (1ULL << 30) ? a->alignment : (1ULL << 30);
    if (length >= (1ULL << 21)) return a->alignment > (1ULL << 21) ? a->alignment : (1ULL << 21);
    return a->alignment;
}

static void insert_free(struct ciommufd_iova_reference *a, struct span s) {
    size_t index = 0;
    while (index < a->free_count && a->free[index].start <= s.start) index++;
    if (a->free_count == a->free_capacity) a->free = grow(a->free, &a->free_capacity, sizeof(struct span));
    memmove(a->free + index + 1, a->free + index, (a->free_count - index) * sizeof(struct span));
    a->free[index] = s; a->free_count++;
    if (index + 1 < a->free_count && a->free[index].end == a->free[index + 1].start) {
        a->free[index].end = a->free[index + 1].end;
        memmove(a->free + index + 1, a->free + index + 2, (a->free_count - index - 2) * sizeof(struct span));
        a->free_count--;
    }
    if (index > 0 && a->free[index - 1].end == a->free[index].start) {
        a->free[index - 1].end = a->free[index].end;
        memmove(a->free + index, a->free + index + 1, (a->free_count - index - 1) * sizeof(struct span));
        a->free_count--;
    }
}

/* Returns the start, or 0 when exhausted (0 is never handed out). */
uint64_t ciommufd_iova_reference_allocate(struct ciommufd_iova_reference *a, uint64_t length) {
    if (length == 0) return 0;
    uint64_t size = round_up(length, a->alignment);
    uint64_t align = natural_alignment(a, size);
    for (size_t i = 0; i < a->class_count; i++) {
        if (a->classes[i].size != size) continue;
        struct size_class *c = &a->classes[i];
        if (c->count > 0 && c->starts[c->count - 1] % align == 0) return c->starts[--c->count];
        break;
    }
    for (size_t index = 0; index < a->free_count; index++) {
        struct span s = a->free[index];
        uint64_t start = round_up(s.start, align);
        if (start < s.start || start >= s.end || s.end - start < size) continue;
        uint64_t end = start + size;
        if (s.start < start && end < s.end) {
            a->free[index].end = start;
            if (a->free_count == a->free_capacity) a->free = grow(a->free, &a->free_capacity, sizeof(struct span));
            memmove(a->free + index + 2, a->free + index + 1, (a->free_count - index - 1) * sizeof(struct span));
            a->free[index + 1] = (struct span){ end, s.end };
            a->free_count++;
        } else if (s.start < start) {
            a->free[index].end = start;
        } else if (end < s.end) {
            a->free[index].start = end;
        } else {
            memmove(a->free + index, a->free + index + 1, (a->free_count - index - 1) * sizeof(struct span));
            a->free_count--;
        }
        return start;
    }
    int any = 0;
    for (size_t i = 0; i < a->class_count; i++) any |= a->classes[i].count > 0;
    if (any) {
        for (size_t i = 0; i < a->class_count; i++)
            for (size_t j = 0; j < a->classes[i].count; j++)
                insert_free(a, (struct span){ a->classes[i].starts[j], a->classes[i].starts[j] + a->classes[i].size });
        for (size_t i = 0; i < a->class_count; i++) free(a->classes[i].starts);
        a->class_count = 0;
        return ciommufd_iova_reference_allocate(a, length);
    }
    return 0;
}

/* Quarantines [start, start + length); returns 0, or -1 for a range that was not allocated. */
int ciommufd_iova_reference_free(struct ciommufd_iova_reference *a, uint64_t start, uint64_t length) {
    struct span s = { start, start + length };
    size_t low = 0, high = a->free_count;
    while (low < high) {
        size_t middle = (low + high) / 2;
        if (a->free[middle].start < s.end) low = middle + 1; else high = middle;
    }
    int overlaps = low > 0 && a->free[low - 1].end > s.start;
    for (size_t i = 0; i < a->quarantine_count && !overlaps; i++)
        overlaps = a->quarantine[i].start < s.end && s.start < a->quarantine[i].end;
    for (size_t i = 0; i < a->class_count && !overlaps; i++) {
        if (a->classes[i].size != length) continue;
        for (size_t j = 0; j < a->classes[i].count && !overlaps; j++) overlaps = a->classes[i].starts[j] == start;
    }
    if (start % a->alignment != 0 || overlaps) return -1;
    if (a->quarantine_count == a->quarantine_capacity) a->quarantine = grow(a->quarantine, &a->quarantine_capacity, sizeof(struct span));
    a->quarantine[a->quarantine_count++] = s;
    return 0;
}

void ciommufd_iova_reference_release_quarantine(struct ciommufd_iova_reference *a) {
    for (size_t q = 0; q < a->quarantine_count; q++) {
        struct span s = a->quarantine[q];
        uint64_t size = s.end - s.start;
        size_t i = 0;
        while (i < a->class_count && a->classes[i].size != size) i++;
        if (i == a->class_count) {
            if (a->class_count == a->class_capacity) a->classes = grow(a->classes, &a->class_capacity, sizeof(struct size_class));
            a->classes[a->class_count++] = (struct size_class){ size, NULL, 0, 0 };
        }
        struct size_class *c = &a->classes[i];
        if (c->count == c->capacity) c->starts = grow(c->starts, &c->capacity, sizeof(uint64_t));
        c->starts[c->count++] = s.start;
    }
    a->quarantine_count = 0;
}
