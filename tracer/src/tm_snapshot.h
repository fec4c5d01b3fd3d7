/* tm_snapshot.h — the recorder's feed into the in-process query API
 * (snapshot.c).  Nothing on the short path: while snapshots are on, the
 * short path's bound stays closed (recorder.c, reopen_short_path), so every
 * event takes a full path, which feeds the snapshot tables. */
#ifndef TM_SNAPSHOT_H
#define TM_SNAPSHOT_H

#include "tm_internal.h"

extern TM_HIDDEN int tm_snap_on; /* TIDEMARK_SNAPSHOT=1, set once at start */

TM_HIDDEN void tm_snap_init(void);
TM_HIDDEN void tm_snap_alloc_slow(const void *ptr, size_t size);
TM_HIDDEN void tm_snap_free_slow(int op, const void *ptr);
/* Recorder's lock held; depth: the thread's region depth before the
 * begin, after the end. */
TM_HIDDEN void tm_snap_region_begin(uint32_t str, const char *name, int depth);
TM_HIDDEN void tm_snap_region_end(int depth);

/* Every allocation and free the recorder records (any domain that counts
 * in the reports' live bytes), from its full paths: the allocation after it
 * happened, the free before the real free.  op: TM_OP_FREE, TM_OP_REALLOC_FREE,
 * TM_OP_REALLOC_FAIL or their Python-domain forms (tm_py_free_op). */
static inline void tm_snap_alloc(const void *ptr, size_t size)
{
    if (tm_unlikely(__atomic_load_n(&tm_snap_on, __ATOMIC_RELAXED)))
        tm_snap_alloc_slow(ptr, size);
}

static inline void tm_snap_free(int op, const void *ptr)
{
    if (tm_unlikely(__atomic_load_n(&tm_snap_on, __ATOMIC_RELAXED)))
        tm_snap_free_slow(op, ptr);
}

#endif
