/* recorder.c — the event stream.
 *
 * One global stream keeps events in the order the process performed them,
 * which is what makes cross-thread frees and address reuse exact: a free is
 * recorded before the real free runs, an allocation after the real malloc
 * returns, both under one lock (lock.c: biased, so the thread doing nearly
 * all the work takes it with plain stores).  The lock never covers a call
 * into libc on the hot path: an event is one to three words stored into the
 * chunk being filled (tm_raw.h).  Encoding and compression happen on the
 * writer thread.
 *
 * Chunks live in a ring of NSLOTS slots.  A full chunk is sealed and handed
 * to the writer thread, which writes it as one block (and frees the slot)
 * without taking the lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_lock.h"
#include "tm_raw.h"
#include "tm_record.h"
#include "tm_snapshot.h"
#include "tm_unwind.h"

/* What a process killed with SIGKILL loses is what is not in the file
 * yet: the chunk being filled and those sealed but not yet written, at
 * most NSLOTS chunks of CHUNK_WORDS words, every event taking at least a
 * word: TM_LOSS_MAX_EVENTS (docs/trace-format.md).  A thread that seals
 * with every other slot still unwritten waits for the writer (or, the
 * writer stuck, writes itself), which is rare while the writer keeps up:
 * it looks for chunks every BUSY_POLL_NS (writer.c) once chunks come. */
#define NSLOTS 4
#define CHUNK_WORDS (8 * 1024)           /* 64 KiB of raw records */
#define TM_LOSS_MAX_EVENTS (NSLOTS * CHUNK_WORDS)
_Static_assert(TM_LOSS_MAX_EVENTS == 32768, "docs/trace-format.md promises 32768 events");
#define WAKE_BACKLOG (NSLOTS - 1)        /* sealed chunks that wake the writer */

_Static_assert(CHUNK_WORDS * 8 * TM_RAW_EXPANSION + TM_RECORD_MAX <= TM_BLOCK_MAX_RAW,
               "an encoded chunk fits in one block");

enum slot_state { SLOT_FREE = 0, SLOT_FILLING, SLOT_SEALED, SLOT_WRITING };

typedef struct slot {
    int state;                          /* enum slot_state, atomic */
    uint32_t words;                     /* raw words once sealed */
} slot;

static struct {
    uint64_t *pool;                     /* NSLOTS * CHUNK_WORDS */
    slot slots[NSLOTS];
    uint32_t cur;                       /* sequence number being filled */
    uint32_t sealed;                    /* chunks sealed so far (atomic) */
    uint32_t claimed;                   /* next chunk a writer may claim */
    uint32_t written;                   /* next chunk to go to the file */
    uint64_t *wend;                     /* the end of the chunk being filled */
    uint64_t closes;                    /* close_short_path calls * 4 */
    uint64_t pokes;                     /* tm_recorder_poke calls * 4 (atomic) */
    uint64_t start_tick;
    /* per-chunk state */
 uint32_t last_tid;
    uint64_t *ts_due;                   /* the clock is read at the first event past it */
    uint64_t last_time;                 /* ticks of the latest TIME record */
    /* The writer thread's requests (see "mail" below), atomic. */
    uint64_t mail_rss;                  /* an RSS sample in bytes + 1; 0 = none */
    int mail_seal;                      /* seal the chunk being filled */
    int sealing;                        /* how far a seal got (seal_stage) */
    int slot_waiting;                   /* a thread sleeps on a slot's state (atomic) */
} rec;

/* Where the chunk is filled to (tm_cur.wpos) and the bound of the owner's
 * short path (tm_cur.limit, see "allocations and frees"). */
TM_HIDDEN tm_cursor tm_cur;

/* --- chunk ring ------------------------------------------------------------------- */

static inline uint64_t *chunk_words(uint32_t seq)
{
    return rec.pool + (size_t)(seq % NSLOTS) * CHUNK_WORDS;
}

static inline void put_time(uint64_t **w, uint64_t t)
{
    rec.last_time = t;
    *(*w)++ = tm_raw(TM_RAW_TIME, t > rec.start_tick ? t - rec.start_tick : 0);
}

/* Until the owner's next full path, every event takes the full path.
 * Lock held.  A closed bound never stored before, 3 mod 4 (see
 * "allocations and frees"). */
static inline void close_short_path(void)
{
    rec.closes += 4;
    __atomic_store_n(&tm_cur.limit, (uintptr_t)rec.closes | 3, __ATOMIC_RELEASE);
}

/* A fresh chunk starts with the latest time, so it encodes on its own; its
 * first event reads the clock. */
static void start_chunk(void)
{
    uint64_t *w = chunk_words(rec.cur);
    tm_commit(w);
    rec.wend = w + CHUNK_WORDS;
    rec.last_tid = 0;
    put_time(&w, rec.last_time);
    tm_commit(w);
    rec.ts_due = w;
    close_short_path();
}

/* Waits (lock held) until the next slot is free.  The writer thread frees
 * slots without the lock, and wakes a thread that sleeps on the slot's
 * state (slot_waiting) meanwhile: a wait costs no CPU the writer could use.
 * Without a writer, on the writer itself (its RSS record filled the chunk)
 * or when the writer has made no progress for HELP_AFTER_WAITS waits, this
 * thread writes sealed chunks itself: nothing may wait for a writer that
 * cannot make progress. */
#define SLOT_WAIT_NS 1000000L
#define HELP_AFTER_WAITS 100
static void acquire_next_slot(void)
{
    slot *s = &rec.slots[rec.cur % NSLOTS];
    unsigned spins = 0, waits = 0;
    int st;
    while ((st = __atomic_load_n(&s->state, __ATOMIC_SEQ_CST)) != SLOT_FREE) {
        /* Events of signal handlers pile up meanwhile (nested events),
         * before pend overflows: help too. */
        if ((!tm_writer_running() || tm_on_writer_thread() || waits > HELP_AFTER_WAITS ||
             __atomic_load_n(&tm_self.npend, __ATOMIC_RELAXED) >= TM_PENDING_MAX / 4) &&
            tm_write_sealed() > 0)
            continue;
        if (++spins < 64) {
            __builtin_ia32_pause();
            continue;
        }
        if (st == SLOT_SEALED)
            tm_writer_wake(); /* not even taken yet: the writer may be asleep */
        __atomic_store_n(&rec.slot_waiting, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) == st) {
            struct timespec ts = {0, SLOT_WAIT_NS};
            syscall(SYS_futex, &s->state, FUTEX_WAIT_PRIVATE, st, &ts, NULL, 0);
        }
        waits++;
    }
    s->state = SLOT_FILLING;
    start_chunk();
}

/* How far a seal got (rec.sealing), for a signal handler on the sealing
 * thread that ends the stream (settle_stream).  Compiler-ordered stores. */
enum { SEAL_NONE = 0, SEAL_BEGUN, SEAL_PUBLISHED, SEAL_ADVANCED };

static inline void seal_stage(int stage)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    rec.sealing = stage;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void seal_locked(void)
{
    int saved = errno; /* the futex wake-up must not show in the program */
    seal_stage(SEAL_BEGUN);
    slot *s = &rec.slots[rec.cur % NSLOTS];
    s->words = (uint32_t)(tm_cur.wpos - chunk_words(rec.cur));
    __atomic_store_n(&s->state, SLOT_SEALED, __ATOMIC_RELEASE);
    seal_stage(SEAL_PUBLISHED);
    rec.cur++;
    __atomic_store_n(&rec.sealed, rec.cur, __ATOMIC_RELEASE);
    seal_stage(SEAL_ADVANCED);
    /* The writer looks every 10 ms anyway; a wake-up is a futex
     * system call, worth it only once chunks pile up. */
    if (rec.cur - __atomic_load_n(&rec.claimed, __ATOMIC_ACQUIRE) >= WAKE_BACKLOG)
        tm_writer_wake();
    acquire_next_slot();
    seal_stage(SEAL_NONE);
    errno = saved;
}

/* Holds more than the TIME record every chunk starts with. */
static inline int chunk_has_events(void)
{
    return tm_cur.wpos > chunk_words(rec.cur) + 1;
}

/* The writer's periodic work never waits for the lock: its holder may be
 * waiting for the writer to free a slot.  0 when the lock was busy.  The
 * owner leaves within about 100 ns when it is not waiting; past the first
 * 256 spins each try yields, so a longer bound would only hold the writer
 * back from the work the owner waits for. */
#define WRITER_LOCK_SPINS 1000

TM_HIDDEN int tm_try_seal_current(void)
{
    if (!tm_trylock_spin(WRITER_LOCK_SPINS))
        return 0;
    if (chunk_has_events())
        seal_locked();
    tm_unlock();
    return 1;
}

TM_HIDDEN int tm_has_sealed(void)
{
    return __atomic_load_n(&rec.claimed, __ATOMIC_ACQUIRE) <
           __atomic_load_n(&rec.sealed, __ATOMIC_ACQUIRE);
}

TM_HIDDEN int tm_write_sealed(void)
{
    int written = 0;
    for (;;) {
        uint32_t k = __atomic_load_n(&rec.claimed, __ATOMIC_ACQUIRE);
        if (k >= __atomic_load_n(&rec.sealed, __ATOMIC_ACQUIRE))
            return written;
        if (!__atomic_compare_exchange_n(&rec.claimed, &k, k + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;
        slot *s = &rec.slots[k % NSLOTS];
        __atomic_store_n(&s->state, SLOT_WRITING, __ATOMIC_RELAXED);
        tm_write_chunk(k, chunk_words(k), s->words, rec.start_tick, &rec.written);
        __atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&rec.slot_waiting, __ATOMIC_SEQ_CST)) {
            __atomic_store_n(&rec.slot_waiting, 0, __ATOMIC_RELAXED);
            int saved = errno;
            syscall(SYS_futex, &s->state, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
            errno = saved;
        }
        written++;
    }
}

/* Writes what is sealed and waits, at most timeout_ns, until chunks other
 * threads claimed are in the file too: before a process dies of a signal,
 * the writer thread may still be encoding the last chunk. */
TM_HIDDEN void tm_write_all_sealed(uint64_t timeout_ns)
{
    tm_write_sealed();
    uint64_t deadline = tm_mono_ns() + timeout_ns;
    while (__atomic_load_n(&rec.written, __ATOMIC_ACQUIRE) <
               __atomic_load_n(&rec.sealed, __ATOMIC_ACQUIRE) &&
           tm_mono_ns() < deadline)
        sched_yield();
}

/* Room for `words` more words in the current chunk, sealing it first when
 * it is too full.  Lock held. */
static inline uint64_t *reserve(uint32_t words)
{
    if (tm_unlikely(tm_cur.wpos + words > rec.wend))
        seal_locked();
    return tm_cur.wpos;
}

/* BYTES records: already-encoded records that need no time. */
static inline uint8_t *bytes_begin(uint32_t max)
{
    return (uint8_t *)(reserve(tm_raw_bytes_words(max)) + 1);
}

static inline void bytes_end(uint8_t *end)
{
    uint64_t *w = tm_cur.wpos;
    uint32_t len = (uint32_t)(end - (uint8_t *)(w + 1));
    *w = tm_raw(TM_RAW_BYTES, len);
    tm_commit(w + tm_raw_bytes_words(len));
}

/* Words an event may need before its own: THREAD, TIME and an RSS sample
 * from the mail. */
#define PREAMBLE_WORDS 3

static inline uint64_t *put_thread(uint64_t *w, uint32_t tid)
{
    if (tm_unlikely(rec.last_tid != tid)) {
        *w++ = tm_raw(TM_OP_THREAD, tid);
        rec.last_tid = tid;
        close_short_path();
    }
    return w;
}

/* Allocations and frees read the clock (rdtsc, ~11 ns on this kind of
 * machine, more than the rest of a record) once per TS_WORDS words of
 * records, about 85 events. */
#define TS_WORDS 128

/* Region, mark and RSS records: the exact time. */
static inline uint64_t *put_time_now(uint64_t *w)
{
    put_time(&w, tm_ticks());
    rec.ts_due = w + TS_WORDS;
    return w;
}

/* --- mail from the writer thread ----------------------------------------------------
 *
 * The writer's periodic work, an RSS sample and sealing a partly filled
 * chunk (so a killed process leaves a readable trace), is recorded by
 * whichever thread records next, not by the writer under the lock: taking
 * the lock from the biased owner means a membarrier, an interrupt for every
 * CPU the program runs on (about 100 us on this kind of machine), and the
 * owner waits meanwhile.  A recording thread looks at the mail when the
 * writer's clock moved, once per 10 ms at most (the writer pokes the
 * recorder then, tm_recorder_poke).  When nobody takes it (the program
 * stopped allocating), the writer falls back to the lock. */

/* Lock held; room for one more word at w. */
static __attribute__((noinline)) uint64_t *take_mail(uint64_t *w)
{
    if (__atomic_load_n(&rec.mail_rss, __ATOMIC_RELAXED)) {
        uint64_t rss = __atomic_exchange_n(&rec.mail_rss, 0, __ATOMIC_ACQUIRE);
        if (rss)
            *w++ = tm_raw(TM_OP_RSS, rss - 1);
    }
    if (__atomic_load_n(&rec.mail_seal, __ATOMIC_RELAXED)) {
        __atomic_store_n(&rec.mail_seal, 0, __ATOMIC_RELAXED);
        rec.wend = tm_cur.wpos; /* the next record finds the chunk full and seals it */
    }
    return w;
}

TM_HIDDEN int tm_post_rss(uint64_t bytes)
{
    uint64_t none = 0;
    return __atomic_compare_exchange_n(&rec.mail_rss, &none, bytes + 1, 0, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED);
}

TM_HIDDEN int tm_take_back_rss(void)
{
    return __atomic_exchange_n(&rec.mail_rss, 0, __ATOMIC_ACQUIRE) != 0;
}

TM_HIDDEN void tm_post_seal(int ask)
{
    __atomic_store_n(&rec.mail_seal, ask, __ATOMIC_RELAXED);
}

TM_HIDDEN uint32_t tm_sealed_count(void)
{
    return __atomic_load_n(&rec.sealed, __ATOMIC_ACQUIRE);
}

/* Allocations and frees: the clock when due (TS_WORDS), else the writer
 * thread's clock, refreshed every 10 ms, when that moved.  Times are then
 * at most TS_WORDS words of records or 10 ms late, and never go backwards
 * (the encoder keeps the latest).  When the writer's clock moved, the mail
 * is looked at too. */
static inline uint64_t *put_time_sampled(uint64_t *w)
{
    if (tm_unlikely(w >= rec.ts_due))
        return put_time_now(w);
    uint64_t hint = __atomic_load_n(&tm_clock_hint, __ATOMIC_RELAXED);
    if (tm_unlikely(hint > rec.last_time)) {
        put_time(&w, hint);
        w = take_mail(w);
    }
    return w;
}

/* --- strings ------------------------------------------------------------------------ */

typedef struct str_entry {
    uint64_t hash;
    uint32_t id;                        /* 0 = empty slot */
    uint32_t len;
    uint64_t off;                       /* into str_bytes */
} str_entry;

#define STR_BYTES_MAX (64u << 20)       /* virtual reservation */

static struct {
    str_entry *table;
    uint32_t cap;                       /* power of two */
    uint32_t count;
    uint64_t *invocations;              /* by id; cap entries */
    uint32_t *by_id;                    /* table index by id; cap entries */
    uint8_t *bytes;
    uint64_t used;
} strs;

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h | 1;
}

static int strs_alloc(uint32_t cap)
{
    str_entry *t = tm_pages(cap * sizeof *t);
    uint64_t *inv = tm_pages(cap * sizeof *inv);
    uint32_t *by_id = tm_pages(cap * sizeof *by_id);
    if (!t || !inv || !by_id) {
        if (t)
            tm_pages_free(t, cap * sizeof *t);
        if (inv)
            tm_pages_free(inv, cap * sizeof *inv);
        if (by_id)
            tm_pages_free(by_id, cap * sizeof *by_id);
        return -ENOMEM;
    }
    if (strs.table) {
        for (uint32_t i = 0; i < strs.cap; i++) {
            str_entry *e = &strs.table[i];
            if (!e->id)
                continue;
            uint32_t j = (uint32_t)e->hash & (cap - 1);
            while (t[j].id)
                j = (j + 1) & (cap - 1);
            t[j] = *e;
            by_id[e->id] = j;
        }
        memcpy(inv, strs.invocations, strs.cap * sizeof *inv);
        tm_pages_free(strs.table, strs.cap * sizeof *t);
        tm_pages_free(strs.invocations, strs.cap * sizeof *inv);
        tm_pages_free(strs.by_id, strs.cap * sizeof *by_id);
    }
    strs.table = t;
    strs.invocations = inv;
    strs.by_id = by_id;
    strs.cap = cap;
    return 0;
}

static void emit_string(uint32_t id, const uint8_t *s, uint32_t len)
{
    uint8_t *p = bytes_begin(1 + 10 + 10 + len);
    *p++ = TM_OP_STRING;
    p = tm_put_u(p, id);
    p = tm_put_u(p, len);
    memcpy(p, s, len);
    bytes_end(p + len);
}

/* Returns the id of string s, defining it in the stream on first use.
 * Lock held.  0 when the tables are exhausted. */
static uint32_t intern_locked(const char *s)
{
    size_t n = tm_strlen(s);
    if (n > TM_STRING_MAX)
        n = TM_STRING_MAX;
    uint64_t h = str_hash(s, n);
    if (strs.count + 1 >= strs.cap / 2 && strs_alloc(strs.cap * 2) < 0)
        return 0;
    uint32_t i = (uint32_t)h & (strs.cap - 1);
    for (;; i = (i + 1) & (strs.cap - 1)) {
        str_entry *e = &strs.table[i];
        if (!e->id)
            break;
        if (e->hash == h && e->len == n && memcmp(strs.bytes + e->off, s, n) == 0)
            return e->id;
    }
    if (strs.used + n > STR_BYTES_MAX)
        return 0;
    str_entry *e = &strs.table[i];
    e->hash = h;
    e->len = (uint32_t)n;
    e->off = strs.used;
    e->id = ++strs.count;
    strs.by_id[e->id] = i;
    memcpy(strs.bytes + strs.used, s, n);
    strs.used += n;
    emit_string(e->id, strs.bytes + e->off, e->len);
    return e->id;
}

/* --- records -------------------------------------------------------------------------- */

static void emit_node(uint32_t id, uint32_t parent, uint64_t ip)
{
    uint8_t *p = bytes_begin(1 + 3 * 10);
    *p++ = TM_OP_STACK_NODE;
    p = tm_put_u(p, id);
    p = tm_put_u(p, parent);
    p = tm_put_u(p, ip);
    bytes_end(p);
}

TM_HIDDEN void tm_emit_py_frame_locked(uint32_t id, uint32_t parent, uint32_t file,
                                       uint32_t func, uint32_t line, uint32_t flags)
{
    uint8_t *p = bytes_begin(1 + 6 * 10);
    *p++ = TM_OP_PY_FRAME;
    p = tm_put_u(p, id);
    p = tm_put_u(p, parent);
    p = tm_put_u(p, file);
    p = tm_put_u(p, func);
    p = tm_put_u(p, line);
    p = tm_put_u(p, flags);
    bytes_end(p);
}

TM_HIDDEN uint32_t tm_intern_string_locked(const char *s)
{
    return intern_locked(s);
}

TM_HIDDEN uint32_t tm_intern_string(const char *s)
{
    tm_lock();
    uint32_t id = intern_locked(s);
    tm_unlock();
    return id;
}

/* Out of line: an allocation whose stack is already known (nearly all of
 * them) then needs no stack frame for the interner's registers. */
static __attribute__((noinline)) uint32_t intern_walk_locked(tm_walk *walk, int keep)
{
    return tm_stack_intern_walk(walk, keep, tm_cfg.depth, emit_node);
}

/* --- allocations and frees ---------------------------------------------------------
 *
 * Nearly every event comes from the lock's owner and needs nothing but its
 * own words: the same thread as the record before, the clock not due, the
 * writer's clock not moved, room in the chunk, no Python frames.  The
 * owner's full path, when it leaves, folds all of that into one bound,
 * tm_cur.limit: the end of the chunk or where the clock is due, or a closed
 * bound when the record before is another thread's or Python frames are
 * on.  The short path (tm_record.h, inline in the hooks) then goes in
 * with the owner's stores (tm_lock.h), compares its end with the bound,
 * writes its words and leaves.  Every other case (another thread, a TIME
 * or THREAD record, the mail, a full chunk, a walk to intern) takes the
 * full path, out of line.
 *
 * Whatever changes one of those conditions closes the bound: under the
 * lock another thread's record (put_thread) and a new chunk
 * (close_short_path); from outside it the writer's clock moving and Python
 * frames coming on (tm_recorder_poke).  A seal asked for lowers the
 * chunk's end.  Closed bounds are small numbers, below every chunk, and
 * each is stored once; the full path reads the bound when it starts and
 * stores the new one only if it is still the one it read
 * (compare-and-swap).  So no poke is lost, even one that comes while the
 * full path closes the bound itself. */

/* Closed bounds: 1 mod 4 here, 3 mod 4 from close_short_path. */
TM_HIDDEN void tm_recorder_poke(void)
{
    uint64_t n = __atomic_add_fetch(&rec.pokes, 4, __ATOMIC_RELAXED);
    __atomic_store_n(&tm_cur.limit, (uintptr_t)n | 1, __ATOMIC_RELEASE);
}

/* Lock held, read before the full path looks at anything the bound
 * depends on. */
static inline uintptr_t short_path_seen(void)
{
    return __atomic_load_n(&tm_cur.limit, __ATOMIC_ACQUIRE);
}

/* Lock held, at the end of a full path that began by reading `seen`.  When
 * the record before is another thread's, or Python frames are on, the
 * bound was closed already (put_thread, the poke). */
static inline void reopen_short_path(uintptr_t seen)
{
    if (rec.last_tid != __atomic_load_n(&tm_lk.owner, __ATOMIC_RELAXED) ||
        __atomic_load_n(&tm_py_on, __ATOMIC_RELAXED) || tm_snap_on)
        return;
    uintptr_t limit = (uintptr_t)(rec.ts_due < rec.wend ? rec.ts_due : rec.wend);
    if (limit != seen)
        __atomic_compare_exchange_n(&tm_cur.limit, &seen, limit, 0, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED);
}

/* The full paths.  An allocation's keeps errno: Python's frame walker may
 * run. */
TM_HIDDEN __attribute__((noinline)) uint32_t tm_record_alloc_full(int fn, const void *ptr,
                                                                  size_t size, tm_walk *walk,
                                                                  int keep, uint32_t stack)
{
    int saved = errno;
    tm_snap_alloc(ptr, size);
    tm_lock();
    uintptr_t seen = short_path_seen();
    if (walk)
        stack = intern_walk_locked(walk, keep);
    uint32_t py = tm_py_stack_locked();
    uint64_t *w = reserve(PREAMBLE_WORDS + 3);
    w = put_thread(w, tm_self.tid);
    w = put_time_sampled(w);
    if (tm_likely(size <= UINT32_MAX && !py)) {
        tm_commit(tm_raw_put_alloc_short(w, (unsigned)fn, ptr, size, stack));
    } else {
        w[0] = tm_raw(TM_OP_ALLOC | (unsigned)fn, (uintptr_t)ptr);
        w[1] = size;
        w[2] = stack | (uint64_t)py << 32;
        tm_commit(w + 3);
    }
    reopen_short_path(seen);
    tm_unlock();
    errno = saved;
    return stack;
}

TM_HIDDEN __attribute__((noinline)) void tm_record_free_full(int op, const void *ptr)
{
    tm_snap_free(op, ptr);
    tm_lock();
    uintptr_t seen = short_path_seen();
    uint64_t *w = reserve(PREAMBLE_WORDS + 1);
    w = put_thread(w, tm_self.tid);
    w = put_time_sampled(w);
    *w++ = tm_raw((unsigned)op, (uintptr_t)ptr);
    tm_commit(w);
    reopen_short_path(seen);
    tm_unlock();
}

static void emit_region_begin(uint32_t name, uint64_t inv)
{
    uint64_t *w = reserve(PREAMBLE_WORDS + 2);
    w = put_thread(w, tm_self.tid);
    w = put_time_now(w);
    w[0] = tm_raw(TM_OP_REGION_BEGIN, name);
    w[1] = inv;
    tm_commit(w + 2);
}

TM_HIDDEN void tm_record_region_begin(const char *name)
{
    tm_lock();
    uint32_t id = intern_locked(name);
    uint64_t inv = ++strs.invocations[id];
    int d = tm_self.region_depth++;
    if (d < TM_MAX_REGION_DEPTH) {
        tm_self.region_name[d] = id;
        tm_self.region_inv[d] = inv;
    }
    tm_snap_region_begin(id, name, d);
    emit_region_begin(id, inv);
    tm_unlock();
}

TM_HIDDEN void tm_record_region_end(void)
{
    if (tm_self.region_depth == 0)
        return; /* unbalanced end: nothing to close */
    tm_self.region_depth--;
    tm_lock();
    tm_snap_region_end(tm_self.region_depth);
    uint64_t *w = reserve(PREAMBLE_WORDS + 1);
    w = put_thread(w, tm_self.tid);
    w = put_time_now(w);
    *w++ = tm_raw(TM_OP_REGION_END, 0);
    tm_commit(w);
    tm_unlock();
}

TM_HIDDEN void tm_record_mark(const char *label)
{
    tm_lock();
    uint32_t id = intern_locked(label);
    uint64_t *w = reserve(PREAMBLE_WORDS + 1);
    w = put_thread(w, tm_self.tid);
    w = put_time_now(w);
    *w++ = tm_raw(TM_OP_MARK, id);
    tm_commit(w);
    tm_unlock();
}

/* Anonymous maps (maps.c): the caller holds the lock around the system
 * call and this, so the record lands exactly where the kernel's change did
 * among every thread's events.  words[0..n) follow the opcode word; with
 * `walk`, its interned stack is one more word. */
TM_HIDDEN void tm_record_map_locked(unsigned op, uint64_t arg, const uint64_t *words,
                                    uint32_t n, tm_walk *walk, int keep, int with_stack)
{
    uint64_t stack = walk ? intern_walk_locked(walk, keep) : 0;
    uint64_t *w = reserve(PREAMBLE_WORDS + 1 + n + 1);
    w = put_thread(w, tm_self.tid);
    w = put_time_now(w);
    *w++ = tm_raw(op, arg);
    for (uint32_t i = 0; i < n; i++)
        *w++ = words[i];
    if (with_stack)
        *w++ = stack;
    tm_cur.wpos = w;
}

TM_HIDDEN void tm_record_rss_locked(uint64_t bytes)
{
    uint64_t *w = reserve(PREAMBLE_WORDS + 1);
    w = put_thread(w, tm_self.tid ? tm_self.tid : tm_gettid());
    w = put_time_now(w);
    *w++ = tm_raw(TM_OP_RSS, bytes);
    tm_cur.wpos = w;
}

TM_HIDDEN int tm_try_record_rss(uint64_t bytes)
{
    if (!tm_trylock_spin(WRITER_LOCK_SPINS))
        return 0;
    uint64_t *w = reserve(PREAMBLE_WORDS + 1);
    w = put_time_now(w);
    *w++ = tm_raw(TM_OP_RSS, bytes);
    tm_commit(w);
    tm_unlock();
    return 1;
}

/* --- nested events ----------------------------------------------------------------
 *
 * A hook entered while its thread is inside a hook already is a signal
 * handler's allocation (or the real allocator calling back): hooks.c sends
 * it here, without a stack (the interrupted hook's walk state and the
 * unwinder's locks may be in use).  When the thread does not hold the
 * recorder's lock, the event is recorded at once.  When it does, the
 * interrupted hook is half-way through a record and nothing in the stream
 * may be touched: the event waits in the thread's pend array, filled
 * without any lock (a reservation is one compare-and-swap, which a further
 * handler cannot split), until that hook leaves (tm_flush_pending), some
 * nanoseconds later.  The real calls happen when the handler makes them:
 * moving a free out of the handler would make the interrupted code and the
 * next handler use the same allocator bin at once, which the program never
 * did.  (So another thread could, in those nanoseconds, be given an
 * address freed in the handler and record it first; the reader would see
 * that allocation replaced.)  An event that finds the array full is
 * counted and recorded as LOST. */

/* A slot of pend, or NULL when full. */
static tm_pending *pend_reserve(void)
{
    uint32_t n = __atomic_load_n(&tm_self.npend, __ATOMIC_RELAXED);
    do {
        if (n >= TM_PENDING_MAX) {
            __atomic_add_fetch(&tm_self.lost, 1, __ATOMIC_RELAXED);
            return NULL;
        }
    } while (!__atomic_compare_exchange_n(&tm_self.npend, &n, n + 1, 0, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return &tm_self.pend[n];
}

static void pend_fill(tm_pending *e, uint32_t op, const void *ptr, uint64_t size)
{
    e->ptr = (uintptr_t)ptr;
    e->size = size;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    e->op = op;
}

/* Behind events still pending, an event waits too: in order, an address
 * freed by one handler and handed out again to the next is never seen
 * allocated twice. */
static inline int must_pend(void)
{
    return __atomic_load_n(&tm_self.npend, __ATOMIC_RELAXED) || tm_lock_is_mine(tm_gettid());
}

TM_HIDDEN void tm_record_nested_alloc(int fn, const void *ptr, size_t size)
{
    if (!must_pend()) {
        tm_record_alloc_full(fn, ptr, size, NULL, 0, 0);
        return;
    }
    tm_snap_alloc(ptr, size); /* lock-free: at once, in the program's order */
    tm_pending *e = pend_reserve();
    if (e)
        pend_fill(e, TM_OP_ALLOC | (unsigned)fn, ptr, size);
}

TM_HIDDEN void tm_record_nested_free(int op, const void *ptr)
{
    if (!must_pend()) {
        tm_record_free_full(op, ptr);
        return;
    }
    tm_snap_free(op, ptr);
    tm_pending *e = pend_reserve();
    if (e)
        pend_fill(e, (uint32_t)op, ptr, 0);
}

/* One pending event into the stream, lock held. */
static void pend_put_locked(const tm_pending *e)
{
    if (e->op >= TM_OP_ALLOC && e->op < TM_OP_ALLOC + TM_FN_FREE) {
        uint64_t *w = reserve(PREAMBLE_WORDS + 3);
        w = put_thread(w, tm_self.tid);
        w = put_time_sampled(w);
        w[0] = tm_raw(e->op, e->ptr);
        w[1] = e->size;
        w[2] = 0;
        tm_commit(w + 3);
    } else {
        uint64_t *w = reserve(PREAMBLE_WORDS + 1);
        w = put_thread(w, tm_self.tid);
        w = put_time_sampled(w);
        *w++ = tm_raw(e->op, e->ptr);
        tm_commit(w);
    }
}

static void lost_put_locked(void)
{
    uint64_t n = __atomic_exchange_n(&tm_self.lost, 0, __ATOMIC_RELAXED);
    if (!n)
        return;
    uint64_t *w = reserve(PREAMBLE_WORDS + 1);
    w = put_time_now(w);
    *w++ = tm_raw(TM_OP_LOST, n);
    tm_commit(w);
}

/* Everything pending, lock held (the stream's end). */
static void pend_put_all_locked(void)
{
    uint32_t n = __atomic_load_n(&tm_self.npend, __ATOMIC_RELAXED);
    for (uint32_t i = 0; i < n; i++)
        if (tm_self.pend[i].op)
            pend_put_locked(&tm_self.pend[i]);
    __atomic_store_n(&tm_self.npend, 0, __ATOMIC_RELAXED);
    lost_put_locked();
}

/* From a hook leaving, the lock not held, before the hook's guard is down
 * (a handler's hook then is nested and, pend not empty, adds its events at
 * the end of pend, complete before this resumes); pend is emptied only
 * when nothing came since the last one was taken. */
TM_HIDDEN void tm_flush_pending(void)
{
    int was = tm_self.busy;
    tm_self.busy = TM_BUSY_HOOK; /* a handler's events meanwhile are nested */
    uint32_t i = 0;
    for (;;) {
        uint32_t n = __atomic_load_n(&tm_self.npend, __ATOMIC_RELAXED);
        if (i >= n) {
            if (__atomic_compare_exchange_n(&tm_self.npend, &n, 0, 0, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED))
                break;
            continue;
        }
        tm_pending e = tm_self.pend[i++];
        tm_lock();
        if (e.op)
            pend_put_locked(&e);
        tm_unlock();
    }
    if (__atomic_load_n(&tm_self.lost, __ATOMIC_RELAXED)) {
        tm_lock();
        lost_put_locked();
        tm_unlock();
    }
    tm_self.busy = was;
}

/* Lock held by the caller (tm_finish or the crash path). */
TM_HIDDEN void tm_record_end(int reason, int detail)
{
    tm_record_hwm_locked();
    uint8_t *p = bytes_begin(1 + 10 + 10);
    *p++ = TM_OP_END;
    p = tm_put_u(p, (uint64_t)reason);
    p = tm_put_u(p, (uint64_t)(uint32_t)detail);
    bytes_end(p);
    seal_locked();
}

/* This thread stopped inside the recorder and now ends the stream (a
 * signal handler calling _exit or exit, tm_end_stream): the record it was
 * writing is dropped.  Every record before tm_cur.wpos is whole
 * (tm_commit); a seal under way (rec.sealing) is finished here.  Returns 0
 * when the stream cannot be put right (a slot that never frees): no END
 * then. */
#define SETTLE_NS 2000000000ull
static int settle_stream(void)
{
    slot *s = &rec.slots[rec.cur % NSLOTS];
    rec.last_tid = 0; /* the next record says whose it is */
    switch (rec.sealing) {
    case SEAL_BEGUN:
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_SEALED)
            break; /* not sealed yet: the chunk is as it was */
        /* fall through */
    case SEAL_PUBLISHED:
        rec.cur++; /* sealed, not yet counted */
        __atomic_store_n(&rec.sealed, rec.cur, __ATOMIC_RELEASE);
        /* fall through */
    case SEAL_ADVANCED: {
        /* Waiting for the next slot, or starting it (acquire_next_slot):
         * the writer frees it, or this thread writes what is sealed;
         * bounded. */
        s = &rec.slots[rec.cur % NSLOTS];
        uint64_t deadline = tm_mono_ns() + SETTLE_NS;
        int st;
        while ((st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE)) != SLOT_FREE &&
               st != SLOT_FILLING) {
            if (!tm_writer_running() && tm_write_sealed() > 0)
                continue;
            if (tm_mono_ns() > deadline)
                return 0;
            sched_yield();
        }
        s->state = SLOT_FILLING;
        start_chunk();
        break;
    }
    default:
        break;
    }
    rec.sealing = SEAL_NONE;
    rec.wend = chunk_words(rec.cur) + CHUNK_WORDS;
    return 1;
}

/* What the stream ends with: pending records, the RSS sample (when not 0),
 * END. */
static void end_locked(int reason, int detail, uint64_t rss)
{
    pend_put_all_locked();
    if (rss)
        tm_record_rss_locked(rss);
    tm_record_end(reason, detail);
}

TM_HIDDEN int tm_end_stream(int reason, int detail, uint64_t rss)
{
    uint32_t me = tm_gettid();
    if (!tm_lock_is_mine(me)) {
        tm_lock();
        end_locked(reason, detail, rss);
        tm_unlock();
        return 0;
    }
    if (tm_lock_settle_mine(me, 20000000) && settle_stream())
        end_locked(reason, detail, rss);
    return 1;
}

TM_HIDDEN void tm_append_locked(const uint8_t *data, size_t len)
{
    uint8_t *p = bytes_begin((uint32_t)len);
    memcpy(p, data, len);
    bytes_end(p + len);
}

TM_HIDDEN void tm_reemit_tables_locked(void)
{
    for (uint32_t id = 1; id <= strs.count; id++) {
        str_entry *e = &strs.table[strs.by_id[id]];
        emit_string(id, strs.bytes + e->off, e->len);
    }
    tm_stacks_foreach(emit_node);
    tm_py_foreach(tm_emit_py_frame_locked);
    int depth = tm_self.region_depth < TM_MAX_REGION_DEPTH ? tm_self.region_depth
                                                           : TM_MAX_REGION_DEPTH;
    for (int d = 0; d < depth; d++)
        emit_region_begin(tm_self.region_name[d], tm_self.region_inv[d]);
}

/* --- start ------------------------------------------------------------------------------ */

static int write_file_header(pid_t pid)
{
    tm_file_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, TM_MAGIC, 8);
    h.version = TM_FORMAT_VERSION;
    h.header_size = sizeof h;
    h.flags = (tm_cfg.stacks ? TM_FLAG_STACKS : 0) | (tm_cfg.follow_fork ? TM_FLAG_FOLLOW_FORK : 0) |
              (tm_ticks_are_ns() ? TM_FLAG_TICKS_ARE_NS : 0) |
              (tm_cfg.python_stacks ? TM_FLAG_PYTHON : 0);
    h.pid = (uint32_t)pid;
    h.ppid = (uint32_t)getppid();
    h.start_tick = rec.start_tick;
    h.start_ns = tm_mono_ns();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h.start_unix_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    h.stack_depth = (uint32_t)(tm_cfg.stacks ? tm_cfg.depth : 0);
    h.rss_interval_ms = (uint32_t)tm_cfg.rss_interval_ms;
    h.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
    struct iovec iov = {&h, sizeof h};
    off_t size;
    int rc = tm_sink_writev(&iov, 1, &size);
    return rc > 0 ? -tm_sink_failed() : rc;
}

static void reset_ring(void)
{
    memset(rec.slots, 0, sizeof rec.slots);
    rec.cur = rec.sealed = rec.claimed = rec.written = 0;
    rec.slots[0].state = SLOT_FILLING;
    rec.start_tick = rec.last_time = tm_ticks();
    rec.mail_rss = 0;
    rec.mail_seal = 0;
    start_chunk();
    tm_lock_init(tm_gettid());
}

TM_HIDDEN int tm_recorder_init(int fd, pid_t pid)
{
    rec.pool = tm_pages_huge((size_t)NSLOTS * CHUNK_WORDS * sizeof *rec.pool);
    strs.bytes = tm_pages(STR_BYTES_MAX);
    if (!rec.pool || !strs.bytes || strs_alloc(1024) < 0 || tm_writer_init() < 0)
        return -ENOMEM;
    int rc = tm_sink_attach(fd);
    if (rc < 0)
        return rc;
    reset_ring();
    return write_file_header(pid);
}

TM_HIDDEN int tm_recorder_reopen(int fd, pid_t pid)
{
    int rc = tm_sink_attach(fd);
    if (rc < 0)
        return rc;
    reset_ring();
    return write_file_header(pid);
}
