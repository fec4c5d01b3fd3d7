/* memo.c — memoized walks (tm_unwind_memo_find / _put), split from
 * unwind.c: the walker itself is there, this file remembers its results.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "tm_internal.h"
#include "tm_unwind.h"

/* --- memoized walks ------------------------------------------------------------------
 *
 * Most allocations come from a few call sites, each reached the same way
 * again and again (a solver's right-hand side allocating its temporaries,
 * a Python loop).  A walk is a function of where it starts and of the
 * stack slots it reads; when the return address of every frame that
 * decides the stack node is still in its slot, the walk would find the same
 * frames, as the walker's reuse of unchanged outer frames (unwind.c)
 * assumes too.  A hit costs one load
 * per frame and no rule lookups, no trie, no lock for interning. */

static inline uint64_t memo_hash(uintptr_t ip, uintptr_t sp)
{
    return (ip ^ sp << 16) * 0x9e3779b97f4a7c15ull;
}

static inline uint32_t memo_set(uint64_t h)
{
    return (uint32_t)(h >> (64 - TM_MEMO_BITS));
}

static inline uint32_t memo_tag(uint64_t h)
{
    return (uint32_t)h | 1; /* never 0, the empty tag */
}

/* The way a key hit last, tried first. */
static inline uint8_t *memo_hint(tm_walk *w, uint64_t h)
{
    return &w->memo_hint[(uint32_t)(h >> 16) % TM_MEMO_HINTS];
}

/* Where a call site's discriminating slots are kept (w->memo_disc): bits
 * of the hash the set index does not use, so call sites sharing a set
 * rarely share this. */
static inline uint32_t memo_disc_slot(uint64_t h)
{
    return (uint32_t)(h >> 32) % TM_MEMO_DISC_SLOTS;
}

_Static_assert((1 << TM_MEMO_BITS) <= 64, "memo_disc_sets has a bit per set");

TM_HIDDEN void tm_unwind_memo_clear(tm_walk *w)
{
    memset(w->memo_tag, 0, sizeof w->memo_tag);
    memset(w->memo_disc, 0, sizeof w->memo_disc);
    w->memo_disc_sets = 0;
}

/* The hash that places a walk from s.  A call site reached more ways than
 * a set holds (a solver's right-hand side called from each stage, through
 * many operators) would thrash its set; once slots that tell its ways apart
 * are learned, the return addresses there are hashed in too, and the ways
 * spread over all sets.  The slots are read only between sp0 and the top
 * of the thread's stack, so reading them is safe whatever they hold now. */
static inline uint64_t memo_key(const tm_walk *w, walk_start s)
{
    uint64_t h = memo_hash(s.ip, s.sp);
    if (tm_likely(!(w->memo_disc_sets >> memo_set(h) & 1)))
        return h; /* one word in L1 says: nothing learned for this set */
    const tm_memo_disc *d = &w->memo_disc[memo_disc_slot(h)];
    if (!d->off[0] || d->tag != memo_tag(h))
        return h;
    if (s.sp < w->lo) /* another stack (sigaltstack): what lies above may be unmapped */
        return h;
    for (int i = 0; i < TM_MEMO_DISC && d->off[i] && s.sp + d->off[i] + 8 <= w->hi; i++)
        h = (h ^ *(const uintptr_t *)(s.sp + d->off[i])) * 0x9e3779b97f4a7c15ull;
    return h;
}

/* Every slot the memoized walk found a return address in still holds it.
 * Independent loads, usually all equal: four at a time, no branches in
 * between. */
static inline int memo_holds(const tm_memo *m, uintptr_t sp)
{
    for (uint32_t i = 0; i < m->n; i += 4) {
        uintptr_t d = (*(const uintptr_t *)(sp + m->off[i]) ^ m->ip[i]) |
                      (*(const uintptr_t *)(sp + m->off[i + 1]) ^ m->ip[i + 1]) |
                      (*(const uintptr_t *)(sp + m->off[i + 2]) ^ m->ip[i + 2]) |
                      (*(const uintptr_t *)(sp + m->off[i + 3]) ^ m->ip[i + 3]);
        if (d)
            return 0;
    }
    return 1;
}

static inline int memo_starts_at(const tm_memo *m, walk_start s)
{
    return m->ip0 == s.ip && m->sp0 == s.sp && (!m->bp0_used || m->bp0 == s.bp);
}

/* A walk from the same call site was checked in vain (before a miss, or
 * before the walk that held): the first slot where it differs from this
 * stack is a vote for a slot that tells this call site's ways apart.  A
 * slot MEMO_VOTES votes ahead of the others is learned; while walks still
 * fail, further slots are learned the same way, up to TM_MEMO_DISC
 * (Python's eval loop reaches one call site through several frames that
 * vary independently).  A call site that learns where another one had
 * learned takes the place over.  (The walks memoized before stay where
 * they are until replaced.) */
#define MEMO_VOTES 8
#define MEMO_VOTE_WINDOW (64 * MEMO_VOTES)
static __attribute__((noinline)) void memo_learn(tm_walk *w, const tm_memo *m, walk_start s)
{
    uint64_t h = memo_hash(s.ip, s.sp);
    tm_memo_disc *d = &w->memo_disc[memo_disc_slot(h)];
    int mine = d->tag == memo_tag(h), k = 0;
    while (mine && k < TM_MEMO_DISC && d->off[k])
        k++;
    if (k == TM_MEMO_DISC)
        return;
    uint32_t i = 0;
    while (i < m->n && *(const uintptr_t *)(s.sp + m->off[i]) == m->ip[i])
        i++;
    if (i == m->n)
        return;
    for (int j = 0; j < k; j++)
        if (m->off[i] == d->off[j])
            return; /* learned already (the key's hash collided) */
    /* The slot most failed checks point at wins, though others come in
     * between (a majority vote: a different slot takes a vote away).  A
     * vote lasts MEMO_VOTE_WINDOW lookups of the thread: a learned slot
     * costs every later lookup from the call site a few loads, worth it
     * only when checks fail often. */
    if (d->votes_tag != memo_tag(h) || w->memo_lookups - d->votes_since > MEMO_VOTE_WINDOW) {
        d->votes_tag = memo_tag(h);
        d->votes = 0;
    }
    if (d->votes == 0) {
        d->cand = m->off[i];
        d->votes_since = w->memo_lookups;
    }
    if (d->cand != m->off[i]) {
        d->votes--;
        return;
    }
    if (++d->votes < MEMO_VOTES)
        return;
    if (!mine) {
        memset(d->off, 0, sizeof d->off);
        d->tag = memo_tag(h);
    }
    d->off[k] = d->cand;
    d->votes = 0;
    w->memo_disc_sets |= 1ull << memo_set(h);
}

/* The ways of a set whose key tag is `tag`, as a bit mask. */
static inline uint32_t memo_ways_tagged(const tm_walk *w, uint32_t set, uint32_t tag)
{
#if defined(__SSE2__)
    _Static_assert(TM_MEMO_WAYS == 8, "two vectors of four tags");
    const __m128i *t = (const __m128i *)w->memo_tag[set], want = _mm_set1_epi32((int)tag);
    __m128i lo = _mm_cmpeq_epi32(_mm_load_si128(t), want);
    __m128i hi = _mm_cmpeq_epi32(_mm_load_si128(t + 1), want);
    return (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(lo)) |
           (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(hi)) << 4;
#else
    uint32_t mask = 0;
    for (uint32_t way = 0; way < TM_MEMO_WAYS; way++)
        mask |= (uint32_t)(w->memo_tag[set][way] == tag) << way;
    return mask;
#endif
}

/* After the hinted way did not hold: the set's other ways with this key.
 * `failed` is the hinted way, when it was this call site's. */
static __attribute__((noinline)) uint32_t memo_find_ways(tm_walk *w, walk_start s, uint64_t h,
                                                        const tm_memo *failed)
{
    uint32_t set = memo_set(h);
    uint32_t ways = memo_ways_tagged(w, set, memo_tag(h)) & ~(1u << *memo_hint(w, h));
    for (; ways; ways &= ways - 1) {
        uint32_t way = (uint32_t)__builtin_ctz(ways);
        const tm_memo *m = &w->memo[set * TM_MEMO_WAYS + way];
        if (!memo_starts_at(m, s))
            continue;
        if (memo_holds(m, s.sp)) {
            /* Found, but after another walk from the same call site
             * was checked in vain: a vote as on a miss. */
            if (failed)
                memo_learn(w, failed, s);
            *memo_hint(w, h) = (uint8_t)way;
            return m->node;
        }
        if (!failed)
            failed = m;
    }
    if (failed)
        memo_learn(w, failed, s);
    return 0;
}

TM_HIDDEN uint32_t tm_unwind_memo_find(tm_walk *w, const void *frame)
{
    if (w->rcache_table != tm_unwind_rule_table())
        return 0;
    walk_start s = start_at(frame);
    uint64_t h = memo_key(w, s);
    uint32_t set = memo_set(h), way = *memo_hint(w, h);
    const tm_memo *m = &w->memo[set * TM_MEMO_WAYS + way];
    w->memo_lookups++;
    /* Nearly always the way that hit last for this key. */
    if (w->memo_tag[set][way] != memo_tag(h) || !memo_starts_at(m, s))
        m = NULL;
    else if (tm_likely(memo_holds(m, s.sp)))
        return m->node;
    return memo_find_ways(w, s, h, m);
}

TM_HIDDEN void tm_unwind_memo_put(tm_walk *w, const void *frame, uint32_t node, int depth)
{
    walk_start s = start_at(frame);
    int n = w->n, m = n < depth ? n : depth;
    /* Only a fast walk from this very frame: it knows every slot. */
    if (!node || m <= 0 || m > TM_MEMO_FRAMES || w->ip[n - 1] != s.ip || w->sp[n - 1] != s.sp)
        return;
    uint64_t h = memo_key(w, s);
    uint32_t set = memo_set(h), way = w->memo_next[set];
    w->memo_next[set] = (uint8_t)((way + 1) % TM_MEMO_WAYS);
    tm_memo *e = &w->memo[set * TM_MEMO_WAYS + way];
    w->memo_tag[set][way] = 0;
    uint32_t k = 0;
    for (int i = 1; i < m; i++, k++) {
        uintptr_t slot = w->sp[n - 1 - i] - 8;
        if (slot <= s.sp || slot - s.sp > UINT32_MAX)
            return; /* not a fast walk's slot */
        e->ip[k] = w->ip[n - 1 - i];
        e->off[k] = (uint32_t)(slot - s.sp);
    }
    for (; k % 4; k++) { /* padding: the first check again */
        e->ip[k] = e->ip[0];
        e->off[k] = e->off[0];
    }
    e->ip0 = s.ip;
    e->sp0 = s.sp;
    e->bp0 = s.bp;
    e->bp0_used = (uint16_t)w->bp0_used;
    e->n = (uint16_t)k;
    e->node = node;
    w->memo_tag[set][way] = memo_tag(h);
    *memo_hint(w, h) = (uint8_t)way; /* the next lookup tries it first */
}
