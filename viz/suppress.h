/* suppress.h — LeakSanitizer-style suppressions: `leak:PATTERN` lines,
 * matched against every frame's function, file and module.  PATTERN is a
 * substring; `*` matches any run of characters, a leading `^` or trailing
 * `$` anchors it. */
#ifndef TM_SUPPRESS_H
#define TM_SUPPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "groups.h"

typedef struct tm_suppressions {
    char **patterns;
    int count;
    unsigned *hits;         /* groups each pattern suppressed */
    uint64_t *bytes, *blocks;   /* and what they held */
} tm_suppressions;

/* The built-in set: one-time memory of the C runtime, the dynamic loader
 * and the Python/NumPy runtimes, kept until exit by design.  Each rule is
 * narrow on purpose (see suppress.c): user code's leaks stay reported. */
typedef struct tm_default_rule {
    const char *name;
    const char *why;
    uint64_t bytes, blocks;     /* what it suppressed in this report */
} tm_default_rule;

/* Number of built-in rules and the table (counters reset by the caller). */
int tm_default_rules(tm_default_rule **rules);
/* Index of the built-in rule matching the stack, or -1. */
int tm_default_match(tm_trace *t, tm_stack_key stack);

/* The built-in rule for NumPy's allocation caches (an index into the
 * table), applied per block: NumPy keeps up to 7 freed blocks of each
 * size below 1 KiB (array data and dimensions) for reuse, never handing
 * them back, so a clean callback leaves a few small blocks allocated at
 * exit.  At a NumPy site, blocks of one size below 1 KiB are suppressed
 * when there are at most 7 of them; a per-call leak makes more. */
extern const int tm_numpy_cache_rule;
/* The built-in rule for Python objects alive at exit (an index into the
 * table), applied per block of Python's allocator domains (traces with
 * python_allocator "traced"): the interpreter frees its objects only in
 * part at shut-down, so module state, code objects and the caches a
 * region fills on its first call are alive at exit in every program.
 * Blocks made outside any region or in the first invocation of their
 * region are suppressed (by the stack rules when one matches, else by
 * this one); a per-call leak inside a region leaves blocks from its later
 * invocations, which stay reported. */
extern const int tm_python_held_rule;
bool tm_is_numpy_module(const char *module);

/* The built-in rules that judge a block rather than its stack
 * (numpy-cache, python-held-at-exit), for `leaks` and the HTML report
 * alike.  Init counts the trace's live heap at exit (-ENOMEM when out of
 * memory; free it all the same). */
typedef struct tm_block_rules {
    tm_trace *t;
    tm_groups site_of;          /* stack key -> bytes: site id, blocks: 1 NumPy, 2 not */
    tm_groups count;            /* hash of (site, size) -> blocks */
    int oom;
} tm_block_rules;
int tm_block_rules_init(tm_block_rules *r, tm_trace *t);
/* tm_numpy_cache_rule or tm_python_held_rule when one suppresses the live
 * block b, else -1. */
int tm_block_rule(tm_block_rules *r, const tm_block *b);
void tm_block_rules_free(tm_block_rules *r);

/* What `leaks` would report for the trace's live heap after the built-in
 * rules (blocks allocated in region `region` only, when not NULL): 0, or
 * -ENOMEM. */
int tm_leaks_after_defaults(tm_trace *t, const char *region, uint64_t *bytes, uint64_t *blocks);

/* Loads FILE; on error prints "FILE:LINE: reason" and returns 2. */
int tm_suppressions_load(tm_suppressions *s, const char *path);
void tm_suppressions_free(tm_suppressions *s);
/* Index of the first pattern matching a frame of the stack, or -1. */
int tm_suppressions_match(tm_suppressions *s, tm_trace *t, tm_stack_key stack);
/* Counts a suppressed group's bytes and blocks to its pattern. */
void tm_suppressions_count(tm_suppressions *s, int k, uint64_t bytes, uint64_t blocks);
/* Exposed for the unit tests. */
bool tm_pattern_match(const char *pattern, const char *text);

#endif /* TM_SUPPRESS_H */
