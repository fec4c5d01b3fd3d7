/* symbolize.c — offline symbolization with libdw (elfutils).
 *
 * Each module recorded in the trace gets its own Dwfl session, reported at
 * the load bias the process used, so runtime addresses look up directly and
 * modules that shared an address range at different times (dlclose, then
 * dlopen of another library) never collide.  Results are cached per
 * address; strings live as long as the symbolizer.
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tm_reader_internal.h"

typedef struct mod_state {
    Dwfl *dwfl;
    Dwfl_Module *mod;
    const char *base;       /* basename of the path */
    int opened;             /* 1 tried, dwfl valid or not */
    int is_self;            /* libtidemark.so: frames dropped */
} mod_state;

typedef struct sym_entry {
    uint64_t ip;            /* 0 = empty */
    int32_t module;
    tm_symbol sym;
} sym_entry;

typedef struct str_chunk {
    struct str_chunk *next;
    size_t used, cap;
    char data[];
} str_chunk;

struct tm_symbolizer {
    const tm_reader *reader;
    mod_state *mods;
    uint32_t nmods;
    sym_entry *cache;
    uint64_t cache_cap, cache_count;
    str_chunk *strings;
    char warning[512];
};

static char *const_unknown = "??";

static const char *keep_string(tm_symbolizer *s, const char *str)
{
    if (!str)
        return NULL;
    size_t len = strlen(str) + 1;
    str_chunk *c = s->strings;
    if (!c || c->used + len > c->cap) {
        size_t cap = len > 65536 ? len : 65536;
        c = malloc(sizeof *c + cap);
        if (!c)
            return const_unknown;
        c->next = s->strings;
        c->used = 0;
        c->cap = cap;
        s->strings = c;
    }
    char *out = c->data + c->used;
    memcpy(out, str, len);
    c->used += len;
    return out;
}

tm_symbolizer *tm_symbolizer_new(const tm_reader *r)
{
    tm_symbolizer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->reader = r;
    s->cache_cap = 4096;
    s->cache = calloc(s->cache_cap, sizeof *s->cache);
    if (!s->cache) {
        free(s);
        return NULL;
    }
    return s;
}

void tm_symbolizer_free(tm_symbolizer *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->nmods; i++)
        if (s->mods[i].dwfl)
            dwfl_end(s->mods[i].dwfl);
    free(s->mods);
    free(s->cache);
    while (s->strings) {
        str_chunk *n = s->strings->next;
        free(s->strings);
        s->strings = n;
    }
    free(s);
}

const char *tm_symbolizer_warning(const tm_symbolizer *s)
{
    return s->warning;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

static void warn(tm_symbolizer *s, const char *fmt, const char *path)
{
    if (!s->warning[0])
        snprintf(s->warning, sizeof s->warning, fmt, path);
}

/* True when path exists and is not a regular file; a missing file is left
 * to libdwfl, whose failure gives the usual "cannot read" warning. */
static int is_special_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static mod_state *module_state(tm_symbolizer *s, int32_t index)
{
    uint32_t n = tm_reader_module_count(s->reader);
    if (index < 0 || (uint32_t)index >= n)
        return NULL;
    if (n > s->nmods) {
        mod_state *m = realloc(s->mods, n * sizeof *m);
        if (!m)
            return NULL;
        memset(m + s->nmods, 0, (n - s->nmods) * sizeof *m);
        s->mods = m;
        s->nmods = n;
    }
    mod_state *ms = &s->mods[index];
    if (ms->opened)
        return ms;
    ms->opened = 1;
    const tm_module *mod = tm_reader_module(s->reader, (uint32_t)index);
    const char *slash = strrchr(mod->path, '/');
    ms->base = keep_string(s, slash ? slash + 1 : mod->path);
    if (!ms->base[0])
        ms->base = const_unknown;
    ms->is_self = strncmp(ms->base, "libtidemark.so", 14) == 0;
    if (mod->path[0] != '/')
        return ms;                      /* [vdso] and friends */
    if (is_special_file(mod->path)) {
        /* The path comes from the trace: a FIFO or a device there must not
         * be opened (a FIFO would block the report, a device could act). */
        warn(s, "%s is not a regular file: its frames are not symbolized", mod->path);
        return ms;
    }
    ms->dwfl = dwfl_begin(&callbacks);
    if (!ms->dwfl)
        return ms;
    dwfl_report_begin(ms->dwfl);
    ms->mod = dwfl_report_elf(ms->dwfl, ms->base, mod->path, -1, mod->bias, false);
    dwfl_report_end(ms->dwfl, NULL, NULL);
    if (!ms->mod) {
        warn(s, "cannot read %s: its frames are not symbolized", mod->path);
        return ms;
    }
    const unsigned char *id;
    GElf_Addr vaddr;
    int idlen = dwfl_module_build_id(ms->mod, &id, &vaddr);
    if (mod->build_id_len && idlen > 0 &&
        ((uint32_t)idlen != mod->build_id_len || memcmp(id, mod->build_id, (size_t)idlen))) {
        warn(s, "%s changed since the trace was taken (build id differs): "
                "its symbols may be wrong", mod->path);
    }
    return ms;
}

/* The innermost function containing pc, inlined ones included, so a leak
 * inside an inlined helper is named after the helper. */
static const char *inline_name(Dwfl_Module *mod, Dwarf_Addr pc)
{
    Dwarf_Addr bias;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, pc, &bias);
    if (!cu)
        return NULL;
    Dwarf_Die *scopes = NULL;
    int n = dwarf_getscopes(cu, pc - bias, &scopes);
    const char *name = NULL;
    for (int i = 0; i < n; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram)
            break;          /* out of line: the symbol table names it */
        if (tag == DW_TAG_inlined_subroutine) {
            Dwarf_Attribute attr;
            if (dwarf_attr_integrate(&scopes[i], DW_AT_name, &attr))
                name = dwarf_formstring(&attr);
            break;
        }
    }
    free(scopes);
    return name;
}

static void lookup(tm_symbolizer *s, const tm_frame_addr *f, tm_symbol *out)
{
    *out = (tm_symbol){.function = const_unknown, .module = const_unknown,
                       .address = f->ip};
    mod_state *ms = module_state(s, f->module);
    if (!ms)
        return;
    const tm_module *mod = tm_reader_module(s->reader, (uint32_t)f->module);
    out->module = ms->base;
    out->offset = f->ip - mod->bias;
    if (!ms->mod)
        return;
    GElf_Off off;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(ms->mod, f->ip, &off, &sym, NULL, NULL, NULL);
    const char *inl = inline_name(ms->mod, f->ip);
    if (inl)
        name = inl;
    if (name) {
        /* "memcpy@@GLIBC_2.14" reads better as "memcpy". */
        const char *at = strchr(name, '@');
        char buf[512];
        if (at && at > name && (size_t)(at - name) < sizeof buf) {
            memcpy(buf, name, (size_t)(at - name));
            buf[at - name] = '\0';
            name = buf;
        }
        out->function = keep_string(s, name);
    }
    Dwfl_Line *line = dwfl_module_getsrc(ms->mod, f->ip);
    if (line) {
        int lineno = 0;
        const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
        if (file) {
            out->file = keep_string(s, file);
            out->line = lineno;
        }
    }
}

static int cache_grow(tm_symbolizer *s)
{
    uint64_t cap = 2 * s->cache_cap;
    sym_entry *c = calloc(cap, sizeof *c);
    if (!c)
        return -ENOMEM;
    for (uint64_t i = 0; i < s->cache_cap; i++) {
        if (!s->cache[i].ip)
            continue;
        uint64_t k = (s->cache[i].ip * 0x9e3779b97f4a7c15ull >> 17) & (cap - 1);
        while (c[k].ip)
            k = (k + 1) & (cap - 1);
        c[k] = s->cache[i];
    }
    free(s->cache);
    s->cache = c;
    s->cache_cap = cap;
    return 0;
}

int tm_symbolize(tm_symbolizer *s, const tm_frame_addr *frame, tm_symbol *out)
{
    if (2 * (s->cache_count + 1) > s->cache_cap && cache_grow(s) < 0) {
        lookup(s, frame, out);
        return 0;
    }
    uint64_t mask = s->cache_cap - 1;
    uint64_t k = (frame->ip * 0x9e3779b97f4a7c15ull >> 17) & mask;
    while (s->cache[k].ip) {
        if (s->cache[k].ip == frame->ip && s->cache[k].module == frame->module) {
            *out = s->cache[k].sym;
            return 0;
        }
        k = (k + 1) & mask;
    }
    lookup(s, frame, out);
    if (frame->ip) {
        s->cache[k] = (sym_entry){.ip = frame->ip, .module = frame->module, .sym = *out};
        s->cache_count++;
    }
    return 0;
}

int tm_symbolize_stack(tm_symbolizer *s, uint32_t node, tm_symbol *out, int max)
{
    tm_frame_addr frames[256];
    int n = tm_reader_stack(s->reader, node, frames, 256);
    int k = 0;
    for (int i = 0; i < n && k < max; i++) {
        mod_state *ms = module_state(s, frames[i].module);
        if (ms && ms->is_self)
            continue;
        tm_symbolize(s, &frames[i], &out[k++]);
    }
    return k;
}
