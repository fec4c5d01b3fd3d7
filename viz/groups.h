/* groups.h — bytes and blocks summed per stack node, the unit of the leak,
 * peak and top reports. */
#ifndef TM_GROUPS_H
#define TM_GROUPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct tm_group {
    uint64_t stack;             /* a tm_stack_key: native and Python stack */
    uint64_t bytes, blocks;
    uint64_t stacks;            /* distinct stacks folded in (site groups) */
    int suppressed;         /* pattern index + 1, 0 = not suppressed */
} tm_group;

typedef struct tm_groups {
    tm_group *v;
    size_t n, cap;
    uint32_t *index;        /* open addressing: stack -> position + 1 */
    size_t icap;
} tm_groups;

void tm_groups_init(tm_groups *g);
void tm_groups_free(tm_groups *g);
/* Adds bytes and blocks to the group of `stack`; -ENOMEM on failure. */
int tm_groups_add(tm_groups *g, uint64_t stack, uint64_t bytes, uint64_t blocks);
/* The group of `stack`, or NULL. */
tm_group *tm_groups_find(tm_groups *g, uint64_t stack);
/* Largest bytes first (then most blocks, then stack id for a stable order). */
void tm_groups_sort_by_bytes(tm_groups *g);
/* Most blocks first (then bytes, then stack id). */
void tm_groups_sort_by_blocks(tm_groups *g);

#endif /* TM_GROUPS_H */
