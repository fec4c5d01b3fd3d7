/* report_tree.h — the tree of frames `tidemark report`'s flame graph draws
 * (internal to report_*.c).  Stacks of merged native and Python frames
 * become paths from the root: node 0 is the root, every other node one
 * (parent, frame) pair, so one tree serves every view and each view only
 * lists (leaf node, bytes, blocks).  Frames carry a kind, the graph's
 * color: Python (own code or library), native (own code or library), the
 * interpreter, unknown. */
#ifndef TM_REPORT_TREE_H
#define TM_REPORT_TREE_H

#include <stdio.h>

#include "cli.h"
#include "report_data.h"

/* Strings -> dense indexes (open addressing on an FNV-1a hash); keys are
 * copied. */
typedef struct tm_strmap {
    char **s;
    size_t n, cap;
    uint32_t *idx;              /* index + 1, 0 = empty */
    size_t icap;
} tm_strmap;

typedef struct tm_rframe {
    int kind, line;
    long function, file, module;    /* into strs, -1 = none */
} tm_rframe;

/* One tree for all the traces of a page: traces of one program share most
 * paths.  The leaf cache is by stack key, which is the trace's own:
 * tm_rtree_next_trace clears it between traces. */
typedef struct tm_rtree {
    tm_strmap strs, frame_keys, node_keys;
    tm_rframe *frames;
    size_t nframes, capframes;
    uint32_t *parent, *frame;   /* by node - 1 */
    size_t nnodes, capnodes;
    tm_tally leaf;              /* (stack key, 0) -> blocks = leaf node */
    int oom;
} tm_rtree;

void tm_rtree_free(tm_rtree *tr);
void tm_rtree_next_trace(tm_rtree *tr);
/* The leaf node of a stack (0 = the root, for a stack with no frames),
 * adding its path on first sight; sets tr->oom when memory ran out. */
uint32_t tm_rtree_leaf(tm_rtree *tr, tm_trace *t, tm_stack_key key);
/* The same, drawn at most `depth` frames deep from the outermost (0: all):
 * the box at that depth takes the stack's figures as its own. */
uint32_t tm_rtree_leaf_at(tm_rtree *tr, tm_trace *t, tm_stack_key key, int depth);
/* The tree as the page reads it: "strs":[...],"frames":[kind, function,
 * file, line, module, ...] (indexes into strs, -1 = none),"nodes":[id -
 * parent, frame, ...] for node ids 1, 2, ... (0 is the root). */
void tm_rtree_json(const tm_rtree *tr, FILE *out);

#endif /* TM_REPORT_TREE_H */
