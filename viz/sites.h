/* sites.h — the allocation site of a stack: its first frame outside the
 * allocator and the interpreter's allocator layers, so that one malloc line
 * reached through several call paths is one site (the unit `leaks` and
 * `kept` group by), with the distinct stacks folded under it. */
#ifndef TM_SITES_H
#define TM_SITES_H

#include <stdbool.h>

#include "cli.h"
#include "groups.h"

/* True for allocator entry points and CPython's allocation wrappers. */
bool tm_is_allocator_frame(const tm_frame *f);
/* Index of the site frame among frames[0..n), or -1 when n is 0. */
int tm_site_frame(const tm_frame *frames, int n);
/* A 64-bit identity of the stack's site (never 0). */
uint64_t tm_stack_site(tm_trace *t, tm_stack_key key);

/* Folds per-stack groups (sorted largest first) into per-site groups:
 * each site keeps the stack of its largest group as representative and
 * counts its distinct stacks in `stacks`.  Groups with `suppressed` set
 * are skipped.  Returns 0 or -ENOMEM. */
int tm_groups_fold_sites(const tm_groups *by_stack, tm_trace *t, tm_groups *out);

#endif /* TM_SITES_H */
