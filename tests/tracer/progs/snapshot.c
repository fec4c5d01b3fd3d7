/* snapshot.c — the preload's in-process query API against the reports.
 *
 * Prints "name live blocks peak" lines (snapshot figures minus the first
 * snapshot's live bytes and blocks, "base"), and per region "region NAME
 * invocations kept_bytes kept_blocks", with write(2) and no stdio:
 *
 *   step1   after malloc 100, calloc 10x30, malloc 1000 + free, realloc NULL->50
 *           ->5000, a failed realloc of the 100 (it lives on), posix_memalign 640:
 *           live 6040 (100+300+5000+640), 4 blocks, peak 6040
 *   step2   reset_peak, malloc 10000 + free: live 6040, peak 16040
 *   regions outer{64, inner{32, 16 freed}, inner{8}}, then free(300):
 *           live 5844 (6040-300+104), 6 blocks; outer 1 invocation 104 B 3 blocks,
 *           inner 2 invocations 40 B 2 blocks
 *
 * At exit the last snapshot's live bytes and blocks (plus base) are what
 * `summary` calls leaked and its peak is summary's peak (the 10000 B spike
 * is the run's highest point).  Without the preload: "absent"; without
 * TIDEMARK_SNAPSHOT=1: "off".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

#include "prog_util.h"
#include "tidemark.h"
#include "tidemark_snapshot.h"

static int (*snap)(struct tidemark_snapshot *);
static int (*snap_region)(uint32_t, struct tidemark_snapshot_region *);
static void (*reset_peak)(void);
static struct tidemark_snapshot base;

static void put(const char *name, const struct tidemark_snapshot *s)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s %llu %llu %llu %u\n", name,
             (unsigned long long)(s->live_bytes - base.live_bytes),
             (unsigned long long)(s->live_blocks - base.live_blocks),
             (unsigned long long)(s->peak_bytes - base.live_bytes), s->exact);
    say(buf);
}

int main(void)
{
    snap = (int (*)(struct tidemark_snapshot *))dlsym(RTLD_DEFAULT, "tidemark_snapshot");
    snap_region = (int (*)(uint32_t, struct tidemark_snapshot_region *))dlsym(
        RTLD_DEFAULT, "tidemark_snapshot_region");
    reset_peak = (void (*)(void))dlsym(RTLD_DEFAULT, "tidemark_reset_peak");
    if (!snap || !snap_region || !reset_peak) {
        say("absent\n");
        return 0;
    }
    if (snap(&base) != 0) {
        say("off\n");
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "base %llu %llu %llu\n", (unsigned long long)base.live_bytes,
             (unsigned long long)base.live_blocks, (unsigned long long)base.peak_bytes);
    say(buf);
    reset_peak();
    struct tidemark_snapshot s;

    char *a = malloc(100);
    char *b = calloc(10, 30);
    char *c = malloc(1000);
    free(c);
    char *r = realloc(NULL, 50);
    r = realloc(r, 5000);
    size_t huge = SIZE_MAX / 2;
    sink = realloc(a, huge); /* fails: a lives on */
    CHECK(sink == NULL);
    void *d;
    CHECK(posix_memalign(&d, 64, 640) == 0);
    snap(&s);
    put("step1", &s);

    reset_peak();
    char *e = malloc(10000);
    sink = e;
    free(e);
    snap(&s);
    put("step2", &s);

    tidemark_region_begin("outer");
    sink = malloc(64);
    tidemark_region_begin("inner");
    sink = malloc(32);
    char *z = malloc(16);
    free(z);
    tidemark_region_end();
    tidemark_region_begin("inner");
    sink = malloc(8);
    tidemark_region_end();
    tidemark_region_end();
    free(b);
    snap(&s);
    put("step3", &s);
    struct tidemark_snapshot_region reg;
    for (uint32_t i = 0; snap_region(i, &reg) == 0; i++) {
        snprintf(buf, sizeof buf, "region %s %llu %llu %llu\n", reg.name,
                 (unsigned long long)reg.invocations, (unsigned long long)reg.kept_bytes,
                 (unsigned long long)reg.kept_blocks);
        say(buf);
    }
    snprintf(buf, sizeof buf, "final %llu %llu %llu\n", (unsigned long long)s.live_bytes,
             (unsigned long long)s.live_blocks, (unsigned long long)s.peak_bytes);
    say(buf);
    sink = r;
    sink = d;
    sink = a;
    return 0;
}
