/* cmd_leaks.c — `tidemark leaks TRACE`: the blocks still allocated when the
 * process ended, grouped by allocation site (or stack), largest first, after
 * the built-in and the user's suppressions. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "groups.h"
#include "sites.h"
#include "suppress.h"

static const char leaks_help[] =
    "usage: tidemark leaks TRACE [--json] [--region NAME] [--suppressions FILE]\n"
    "                            [--fail-on-leak] [--limit N] [--depth N]\n"
    "                            [--group-by site|stack] [--no-default-suppressions]\n"
    "\n"
    "Blocks still allocated when the traced process ended, grouped by the\n"
    "site that allocated them (the first frame outside the allocator), largest\n"
    "first.  One-time memory of the C, loader, Python and NumPy runtimes is\n"
    "suppressed by built-in rules, listed with what each suppressed.\n"
    "\n"
    "  --json               machine-readable: leaked_bytes, leaked_blocks,\n"
    "                       suppressed_bytes, suppressed_blocks,\n"
    "                       default_suppressions, group_by, suppressed_by:\n"
    "                       [{rule, bytes, blocks}], groups: [{bytes, blocks,\n"
    "                       stacks, stack: [{function, file, line, module,\n"
    "                       address}]}]\n"
    "  --group-by site|stack  one group per allocation site, with the distinct\n"
    "                       stacks reaching it folded in (default), or one per\n"
    "                       full stack\n"
    "  --no-default-suppressions  report the runtimes' one-time memory too\n"
    "  --region NAME        only blocks allocated while NAME was the innermost\n"
    "                       open region of the allocating thread\n"
    "  --suppressions FILE  LeakSanitizer format: 'leak:PATTERN' lines; a\n"
    "                       group is suppressed when PATTERN (substring, '*'\n"
    "                       wildcard, '^'/'$' anchors) matches a frame's\n"
    "                       function, file or module\n"
    "  --fail-on-leak       exit 3 when anything unsuppressed leaked\n"
    "  --limit N            show the N largest groups (text default 10, JSON all)\n"
    "  --depth N            frames shown per stack (default: text 12, JSON all)\n"
    "  --native-only, --python-only   frames of one kind only (traces taken with\n"
    "                       --python-stacks show both, merged)\n"
    "\n"
    "Exit status: 0; 3 with --fail-on-leak and a leak; 2 for bad input or a\n"
    "truncated/damaged trace (the report then covers what could be read).\n";

/* --- collecting ------------------------------------------------------------------ */

typedef struct collect {
    const char *region;
    tm_trace *trace;
    tm_groups *groups;
    tm_block_rules *rules;      /* NULL without the built-in rules */
    uint64_t cached_bytes, cached_blocks;
    tm_groups *held;            /* python-held-at-exit blocks by stack (NULL: not wanted) */
    int oom;
} collect;

static int add_block(const tm_block *b, void *arg)
{
    collect *c = arg;
    if (c->region && !tm_trace_region_is(c->trace, b->region, c->region))
        return 0;
    int rule = c->rules ? tm_block_rule(c->rules, b) : -1;
    if (rule == tm_numpy_cache_rule) {
        c->cached_bytes += b->size;
        c->cached_blocks++;
        return 0;
    }
    if (rule == tm_python_held_rule) {
        if (c->held &&
            tm_groups_add(c->held, tm_view_key(b->stack, b->pystack), b->size, 1) < 0) {
            c->oom = 1;
            return 1;
        }
        return 0;
    }
    if (tm_groups_add(c->groups, tm_view_key(b->stack, b->pystack), b->size, 1) < 0) {
        c->oom = 1;
        return 1;
    }
    return 0;
}

int tm_leaks_after_defaults(tm_trace *t, const char *region, uint64_t *bytes, uint64_t *blocks)
{
    tm_groups groups;
    tm_groups_init(&groups);
    tm_block_rules rules;
    if (tm_block_rules_init(&rules, t) < 0) {
        tm_block_rules_free(&rules);
        return -ENOMEM;
    }
    /* No .held: those blocks are suppressed whichever rule takes them. */
    collect col = {.region = region, .trace = t, .groups = &groups, .rules = &rules};
    tm_heap_foreach(t->heap, add_block, &col);
    col.oom |= rules.oom;
    tm_block_rules_free(&rules);
    *bytes = *blocks = 0;
    for (size_t i = 0; i < groups.n && !col.oom; i++) {
        if (tm_default_match(t, groups.v[i].stack) >= 0)
            continue;
        *bytes += groups.v[i].bytes;
        *blocks += groups.v[i].blocks;
    }
    tm_groups_free(&groups);
    return col.oom ? -ENOMEM : 0;
}

int tm_cmd_leaks(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"region", required_argument, NULL, 'r'},
        {"suppressions", required_argument, NULL, 's'},
        {"fail-on-leak", no_argument, NULL, 'f'},
        TM_STACK_OPTIONS,
        {"group-by", required_argument, NULL, 'g'},
        {"no-default-suppressions", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int json = 0, fail_on_leak = 0, by_site = 1, defaults = 1, c, r;
    tm_stack_opts so = {.limit = -1, .depth = -1};
    const char *region = NULL, *supp_path = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jr:s:fn:d:h", opts, NULL)) != -1) {
        if ((r = tm_stack_option("leaks", c, &so)) != 0) {
            if (r < 0)
                return TM_EXIT_BAD_INPUT;
            continue;
        }
        switch (c) {
        case 'j': json = 1; break;
        case 'r': region = optarg; break;
        case 's': supp_path = optarg; break;
        case 'f': fail_on_leak = 1; break;
        case 'g':
            if (strcmp(optarg, "site") && strcmp(optarg, "stack"))
                return tm_usage_error("leaks", "--group-by wants site or stack, got '%s'", optarg);
            by_site = !strcmp(optarg, "site");
            break;
        case 'D': defaults = 0; break;
        case 'h': fputs(leaks_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("leaks", argv);
        }
    }
    if (argc - optind != 1)
        return tm_usage_error("leaks", "expected one TRACE");

    tm_suppressions supp = {0};
    int rc;
    if (supp_path && (rc = tm_suppressions_load(&supp, supp_path)))
        return rc;
    tm_trace t;
    if ((rc = tm_trace_open(&t, argv[optind]))) {
        tm_suppressions_free(&supp);
        return rc;
    }
    tm_groups groups;
    tm_groups_init(&groups);
    if (tm_trace_scan(&t, NULL, NULL))
        goto fail;
    if (region && !tm_trace_has_region(&t, region)) {
        tm_error("%s: no region named '%s' in the trace", t.path, region);
        tm_groups_free(&groups);
        tm_suppressions_free(&supp);
        tm_trace_close(&t);
        return TM_EXIT_BAD_INPUT;
    }
    tm_block_rules block_rules;
    if (defaults && tm_block_rules_init(&block_rules, &t) < 0) {
        tm_block_rules_free(&block_rules);
        tm_error("%s: out of memory grouping leaks", t.path);
        goto fail;
    }
    collect col = {.region = region, .trace = &t, .groups = &groups,
                   .rules = defaults ? &block_rules : NULL};
    tm_groups held;
    tm_groups_init(&held);
    col.held = &held;
    tm_heap_foreach(t.heap, add_block, &col);
    if (defaults) {
        col.oom |= block_rules.oom;
        tm_block_rules_free(&block_rules);
    }
    if (col.oom) {
        tm_groups_free(&held);
        tm_error("%s: out of memory grouping leaks", t.path);
        goto fail;
    }
    tm_groups_sort_by_bytes(&groups);

    tm_default_rule *rules;
    int nrules = tm_default_rules(&rules);
    for (int r = 0; r < nrules; r++)
        rules[r].bytes = rules[r].blocks = 0;
    rules[tm_numpy_cache_rule].bytes = col.cached_bytes;
    rules[tm_numpy_cache_rule].blocks = col.cached_blocks;
    uint64_t bytes = 0, blocks = 0, sup_bytes = col.cached_bytes, sup_blocks = col.cached_blocks;
    /* Python objects held at exit: the stack rule that explains them when
     * one does (an import's objects stay python-import's), else theirs. */
    for (size_t i = 0; i < held.n; i++) {
        const tm_group *g = &held.v[i];
        int rule = tm_default_match(&t, g->stack);
        rule = rule >= 0 ? rule : tm_python_held_rule;
        rules[rule].bytes += g->bytes;
        rules[rule].blocks += g->blocks;
        sup_bytes += g->bytes;
        sup_blocks += g->blocks;
    }
    tm_groups_free(&held);
    for (size_t i = 0; i < groups.n; i++) {
        tm_group *g = &groups.v[i];
        int rule = defaults ? tm_default_match(&t, g->stack) : -1;
        if (rule >= 0) {
            rules[rule].bytes += g->bytes;
            rules[rule].blocks += g->blocks;
            g->suppressed = 1;
        } else {
            g->suppressed = tm_suppressions_match(&supp, &t, g->stack) + 1;
            tm_suppressions_count(&supp, g->suppressed - 1, g->bytes, g->blocks);
        }
        if (g->suppressed) {
            sup_bytes += g->bytes;
            sup_blocks += g->blocks;
        } else {
            bytes += g->bytes;
            blocks += g->blocks;
            g->stacks = 1;
        }
    }
    if (by_site) {
        tm_groups sites;
        if (tm_groups_fold_sites(&groups, &t, &sites) < 0) {
            tm_error("%s: out of memory grouping leaks", t.path);
            goto fail;
        }
        tm_groups_free(&groups);
        groups = sites;
    }
    size_t shown = 0, max_shown = tm_stack_opts_shown(&so, json);

    if (json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_ku64(&j, "leaked_bytes", bytes);
        tm_json_ku64(&j, "leaked_blocks", blocks);
        tm_json_ku64(&j, "suppressed_bytes", sup_bytes);
        tm_json_ku64(&j, "suppressed_blocks", sup_blocks);
        tm_json_kstr(&j, "region", region);
        tm_json_kbool(&j, "default_suppressions", defaults);
        tm_json_kstr(&j, "group_by", by_site ? "site" : "stack");
        tm_json_key(&j, "suppressed_by");
        tm_json_array(&j);
        for (int r = 0; r < nrules; r++) {
            if (!rules[r].blocks)
                continue;
            tm_json_object(&j);
            tm_json_kstr(&j, "rule", rules[r].name);
            tm_json_ku64(&j, "bytes", rules[r].bytes);
            tm_json_ku64(&j, "blocks", rules[r].blocks);
            tm_json_object_end(&j);
        }
        for (int k = 0; k < supp.count; k++) {
            if (!supp.hits[k])
                continue;
            tm_json_object(&j);
            tm_json_kstr(&j, "rule", supp.patterns[k]);
            tm_json_ku64(&j, "bytes", supp.bytes[k]);
            tm_json_ku64(&j, "blocks", supp.blocks[k]);
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_key(&j, "groups");
        tm_json_array(&j);
        for (size_t i = 0; i < groups.n && shown < max_shown; i++) {
            const tm_group *g = &groups.v[i];
            if (g->suppressed)
                continue;
            shown++;
            tm_json_object(&j);
            tm_json_ku64(&j, "bytes", g->bytes);
            tm_json_ku64(&j, "blocks", g->blocks);
            tm_json_ku64(&j, "stacks", g->stacks);
            tm_json_key(&j, "stack");
            tm_stack_json(&j, &t, g->stack, tm_stack_opts_depth(&so, 1));
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        char a[32];
        printf("%s leaked in %" PRIu64 " blocks%s%s%s\n", tm_human_bytes(bytes, a), blocks,
               region ? " in region '" : "", region ? region : "", region ? "'" : "");
        if (sup_blocks) {
            printf("(%s in %" PRIu64 " blocks suppressed:", tm_human_bytes(sup_bytes, a),
                   sup_blocks);
            const char *sep = " ";
            for (int r = 0; r < nrules; r++, sep = rules[r - 1].blocks ? ", " : sep)
                if (rules[r].blocks)
                    printf("%s%s %s/%" PRIu64, sep, rules[r].name,
                           tm_human_bytes(rules[r].bytes, a), rules[r].blocks);
            for (int k = 0; k < supp.count; k++, sep = ", ")
                if (supp.hits[k])
                    printf("%sleak:%s %s/%" PRIu64, sep, supp.patterns[k],
                           tm_human_bytes(supp.bytes[k], a), supp.blocks[k]);
            printf(")\n");
        }
        for (size_t i = 0; i < groups.n && shown < max_shown; i++) {
            const tm_group *g = &groups.v[i];
            if (g->suppressed)
                continue;
            shown++;
            printf("\n%s in %" PRIu64 " block%s (%.1f%%) allocated at", tm_human_bytes(g->bytes, a),
                   g->blocks, g->blocks == 1 ? "" : "s",
                   bytes ? 100.0 * (double)g->bytes / (double)bytes : 0.0);
            if (by_site && g->stacks > 1)
                printf(" one site, reached by %" PRIu64 " stacks (largest shown;"
                       " --group-by stack for each)", g->stacks);
            printf(":\n");
            tm_stack_print(stdout, &t, g->stack, tm_stack_opts_depth(&so, 0), "  ");
        }
        size_t rest = 0;
        for (size_t i = 0; i < groups.n; i++)
            rest += !groups.v[i].suppressed;
        if (rest > shown)
            printf("\n... %zu more groups (--limit to show them)\n", rest - shown);
    }
    tm_groups_free(&groups);
    tm_suppressions_free(&supp);
    rc = tm_trace_close(&t);
    if (rc == TM_EXIT_OK && fail_on_leak && blocks)
        rc = TM_EXIT_FOUND;
    return rc;

fail:
    tm_groups_free(&groups);
    tm_suppressions_free(&supp);
    tm_trace_close(&t);
    return TM_EXIT_FAIL;
}
