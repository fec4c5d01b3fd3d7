/* tidemark_snapshot.h — the in-process query API of libtidemark.so.
 *
 * Live and peak heap figures of the traced process, and per region name its
 * invocations and the bytes allocated inside it (inclusive of nested
 * regions) that are still alive, exactly as the reports compute them from
 * the trace for the same moment (requested bytes).  On only when the
 * process started with TIDEMARK_SNAPSHOT=1 (`tidemark pytest` sets it):
 * then the preload keeps an address -> (size, region path) table.
 *
 * The entry points are looked up with dlsym(RTLD_DEFAULT, ...); absent or
 * returning -1 means "not under the tracer" or "not enabled".
 */
#ifndef TIDEMARK_SNAPSHOT_H
#define TIDEMARK_SNAPSHOT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TIDEMARK_SNAPSHOT_VERSION 1

struct tidemark_snapshot {
    uint32_t version;       /* TIDEMARK_SNAPSHOT_VERSION */
    uint32_t exact;         /* 0 when the address table overflowed */
    uint64_t live_bytes;
    uint64_t live_blocks;
    uint64_t peak_bytes;    /* since the last tidemark_reset_peak() */
    uint32_t regions;       /* region names known: 0 .. regions-1 */
    uint32_t reserved;
};

struct tidemark_snapshot_region {
    const char *name;
    uint64_t invocations;   /* begun so far */
    uint64_t kept_bytes;    /* allocated inside (inclusive), alive now */
    uint64_t kept_blocks;
    uint64_t watch_invocations; /* ended since the watch point (tidemark_snapshot_watch) */
    uint64_t watch_kept_bytes;  /* kept_bytes at the watch point; UINT64_MAX = not reached */
};

/* 0, or -1 when snapshots are off (TIDEMARK_SNAPSHOT unset). */
int tidemark_snapshot(struct tidemark_snapshot *out);
/* Region i of 0 .. regions-1: 0, or -1 past the end. */
int tidemark_snapshot_region(uint32_t i, struct tidemark_snapshot_region *out);
/* peak_bytes := live_bytes now. */
void tidemark_reset_peak(void);
/* Sets region `name`'s watch point at the end of its `after`-th invocation
 * from now (0 = now): its kept_bytes then is remembered, and invocations
 * ended past it are counted.  0, or -1 when off. */
int tidemark_snapshot_watch(const char *name, uint64_t after);
/* Everything recorded so far goes to the trace file (the chunk being
 * filled is sealed and written): a reader sees it, up to this moment. */
int tidemark_flush(void);

#ifdef __cplusplus
}
#endif

#endif
