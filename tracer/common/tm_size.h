/* tm_size.h — sizes as people write them ("64 MiB", "64MiB", "64M",
 * "1 GiB", "65536"), for TIDEMARK_STACK_MEMORY (the preload, config.c) and
 * `tidemark run --stack-memory` (viz/cmd_run.c), which must agree.  No
 * locale, no allocation. */
#ifndef TM_SIZE_H
#define TM_SIZE_H

#include <stdint.h>

#define TM_STACK_MEMORY_DEFAULT (256ull << 20)
#define TM_STACK_MEMORY_MIN (1ull << 20)

/* Bytes of s: digits, optional blanks, an optional unit (B; K, KB, KiB;
 * M, MB, MiB; G, GB, GiB; T, TB, TiB: all powers of 1024, any case).
 * 0 with *out set, -1 when s is not a size or above 2^50. */
static inline int tm_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (!p || *p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p++ - '0');
        if (v > (1ull << 50))
            return -1;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    int shift = 0;
    switch (*p | 0x20) {
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    default: break;
    }
    if (shift) {
        p++;
        if ((*p | 0x20) == 'i')
            p++;
        if ((*p | 0x20) == 'b')
            p++;
    } else if ((*p | 0x20) == 'b') {
        p++;
    }
    if (*p || v > (1ull << 50) >> shift)
        return -1;
    *out = v << shift;
    return 0;
}

#endif
