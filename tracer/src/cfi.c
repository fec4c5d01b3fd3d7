/* cfi.c — unwind rules from a module's .eh_frame, read where the loader
 * mapped it.
 *
 * The walker (unwind.c) needs, per return address, three facts: the CFA
 * (rsp or rbp plus an offset), that the return address sits at CFA - 8,
 * and where the caller's rbp is.  Every loaded module carries its call
 * frame information in memory (PT_GNU_EH_FRAME: .eh_frame_hdr with a
 * sorted search table, pointing into .eh_frame), so nothing has to be
 * opened or read from disk: a library such as libdw would open the file,
 * take descriptors from the program and load libelf, libz, liblzma and
 * libbz2 into it.  This is the subset of DWARF call frame information that
 * compilers emit for x86-64 code; a rule outside it (a CFA or a return
 * address given by an expression) is reported as TM_CFI_BAD, and the
 * walker falls back to frame pointers.  The rules agree with libdw's at
 * every address of libc and libpython (tests/tracer/test_cfi.c).
 *
 * Runs on the walker's miss path, once per new return address: no
 * allocation, no stdio, no locks of its own.
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <link.h>
#include <string.h>

#include "tm_cfi.h"

/* --- reading ----------------------------------------------------------------- */

/* A bounded read position: a read past `end` sets `bad` and yields 0. */
typedef struct cursor {
    const uint8_t *p, *end;
    int bad;
} cursor;

static int need(cursor *c, size_t n)
{
    if (c->bad || (size_t)(c->end - c->p) < n) {
        c->bad = 1;
        return 0;
    }
    return 1;
}

static uint64_t get_fixed(cursor *c, size_t n)
{
    uint64_t v = 0;
    if (!need(c, n))
        return 0;
    memcpy(&v, c->p, n); /* x86-64 is little-endian, as the tables are */
    c->p += n;
    return v;
}

static uint8_t get_u8(cursor *c)
{
    return (uint8_t)get_fixed(c, 1);
}

static uint64_t get_uleb(cursor *c)
{
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (!need(c, 1) || shift > 63) {
            c->bad = 1;
            return 0;
        }
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
}

static int64_t get_sleb(cursor *c)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b;
    do {
        if (!need(c, 1) || shift > 63) {
            c->bad = 1;
            return 0;
        }
        b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40))
        v |= ~0ull << shift;
    return (int64_t)v;
}

/* A pointer in DW_EH_PE encoding `enc`.  pc-relative values are relative to
 * where they are stored, data-relative ones to `datarel` (the
 * .eh_frame_hdr); the others compilers do not emit for x86-64. */
static uintptr_t get_encoded(cursor *c, uint8_t enc, uintptr_t datarel)
{
    if (enc == DW_EH_PE_omit)
        return 0;
    uintptr_t at = (uintptr_t)c->p, v;
    switch (enc & 0x0f) {
    case DW_EH_PE_absptr: v = (uintptr_t)get_fixed(c, 8); break;
    case DW_EH_PE_uleb128: v = (uintptr_t)get_uleb(c); break;
    case DW_EH_PE_udata2: v = (uintptr_t)get_fixed(c, 2); break;
    case DW_EH_PE_udata4: v = (uintptr_t)get_fixed(c, 4); break;
    case DW_EH_PE_udata8: v = (uintptr_t)get_fixed(c, 8); break;
    case DW_EH_PE_sleb128: v = (uintptr_t)get_sleb(c); break;
    case DW_EH_PE_sdata2: v = (uintptr_t)(int16_t)get_fixed(c, 2); break;
    case DW_EH_PE_sdata4: v = (uintptr_t)(int32_t)get_fixed(c, 4); break;
    case DW_EH_PE_sdata8: v = (uintptr_t)get_fixed(c, 8); break;
    default: c->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case DW_EH_PE_absptr: break;
    case DW_EH_PE_pcrel: v += at; break;
    case DW_EH_PE_datarel: v += datarel; break;
    default: c->bad = 1; return 0;
    }
    /* DW_EH_PE_indirect: the address of the value, not dereferenced (only
     * personality routines are indirect, and they are only skipped). */
    return v;
}

/* One CIE or FDE: its contents after the length, bounded.  `next` is the
 * entry after it. */
static int entry_at(const uint8_t *p, cursor *body)
{
    cursor c = {p, p + 12, 0};
    uint64_t len = get_fixed(&c, 4);
    if (len == 0xffffffffu)
        len = get_fixed(&c, 8);
    if (c.bad || len == 0 || len > (1u << 30))
        return -1;
    *body = (cursor){c.p, c.p + len, 0};
    return 0;
}

/* --- the rule machine ------------------------------------------------------------ */

/* The rules of the registers the walker follows; the others' are parsed
 * and dropped. */
enum reg_rule { R_UNSPEC = 0, R_UNDEF, R_SAME, R_OFFSET, R_OTHER };

typedef struct reg_state {
    uint8_t rule;
    int64_t off;
} reg_state;

typedef struct row {
    int cfa_expr;      /* the CFA is an expression (unless it was one breg) */
    uint64_t cfa_reg;
    int64_t cfa_off;
    reg_state ra, bp;
} row;

#define STATE_STACK 16

typedef struct machine {
    row cur, init;     /* init: after the CIE's instructions (DW_CFA_restore) */
    row saved[STATE_STACK];
    int nsaved;
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int signal;
    uintptr_t loc, pc; /* the row at pc is the one wanted */
    uintptr_t datarel;
    int bad;
} machine;

static reg_state *tracked(machine *m, uint64_t reg)
{
    if (reg == m->ra_reg)
        return &m->cur.ra;
    if (reg == TM_DW_RBP)
        return &m->cur.bp;
    return NULL;
}

static void set_reg(machine *m, uint64_t reg, uint8_t rule, int64_t off)
{
    reg_state *r = tracked(m, reg);
    if (r)
        *r = (reg_state){rule, off};
}

static void restore_reg(machine *m, uint64_t reg)
{
    reg_state *r = tracked(m, reg);
    if (r)
        *r = reg == m->ra_reg ? m->init.ra : m->init.bp;
}

/* A CFA expression that is one DW_OP_breg<n> <offset> is a register and
 * an offset (libdw reads it the same way); anything longer is not. */
static void def_cfa_expression(machine *m, cursor *c)
{
    uint64_t len = get_uleb(c);
    if (!need(c, len))
        return;
    cursor e = {c->p, c->p + len, 0};
    c->p += len;
    uint8_t op = get_u8(&e);
    if (op >= DW_OP_breg0 && op <= DW_OP_breg31) {
        int64_t off = get_sleb(&e);
        if (!e.bad && e.p == e.end) {
            m->cur.cfa_expr = 0;
            m->cur.cfa_reg = op - DW_OP_breg0;
            m->cur.cfa_off = off;
            return;
        }
    }
    m->cur.cfa_expr = 1;
}

static void skip_block(cursor *c)
{
    uint64_t len = get_uleb(c);
    if (need(c, len))
        c->p += len;
}

/* Advances the location; past pc, the row wanted is complete. */
static int advance(machine *m, uint64_t delta)
{
    m->loc += delta * m->code_align;
    return m->loc <= m->pc;
}

/* Runs instructions until the row at pc is known (or they end).  Returns
 * 0, or -1 on an instruction this interpreter does not know. */
static int run(machine *m, cursor *c)
{
    while (c->p < c->end && !c->bad) {
        uint8_t op = get_u8(c), low = op & 0x3f;
        uint64_t reg;
        switch (op & 0xc0) {
        case DW_CFA_advance_loc:
            if (!advance(m, low))
                return 0;
            continue;
        case DW_CFA_offset:
            set_reg(m, low, R_OFFSET, (int64_t)get_uleb(c) * m->data_align);
            continue;
        case DW_CFA_restore:
            restore_reg(m, low);
            continue;
        }
        switch (op) {
        case DW_CFA_nop:
            break;
        case DW_CFA_set_loc: {
            uintptr_t to = get_encoded(c, m->fde_enc, m->datarel);
            if (to > m->pc)
                return 0;
            m->loc = to;
            break;
        }
        case DW_CFA_advance_loc1:
            if (!advance(m, get_fixed(c, 1)))
                return 0;
            break;
        case DW_CFA_advance_loc2:
            if (!advance(m, get_fixed(c, 2)))
                return 0;
            break;
        case DW_CFA_advance_loc4:
            if (!advance(m, get_fixed(c, 4)))
                return 0;
            break;
        case DW_CFA_offset_extended:
            reg = get_uleb(c);
            set_reg(m, reg, R_OFFSET, (int64_t)get_uleb(c) * m->data_align);
            break;
        case DW_CFA_offset_extended_sf:
            reg = get_uleb(c);
            set_reg(m, reg, R_OFFSET, get_sleb(c) * m->data_align);
            break;
        case DW_CFA_GNU_negative_offset_extended:
            reg = get_uleb(c);
            set_reg(m, reg, R_OFFSET, -(int64_t)get_uleb(c) * m->data_align);
            break;
        case DW_CFA_restore_extended:
            restore_reg(m, get_uleb(c));
            break;
        case DW_CFA_undefined:
            set_reg(m, get_uleb(c), R_UNDEF, 0);
            break;
        case DW_CFA_same_value:
            set_reg(m, get_uleb(c), R_SAME, 0);
            break;
        case DW_CFA_register:
            reg = get_uleb(c);
            get_uleb(c);
            set_reg(m, reg, R_OTHER, 0);
            break;
        case DW_CFA_val_offset:
            reg = get_uleb(c);
            get_uleb(c);
            set_reg(m, reg, R_OTHER, 0);
            break;
        case DW_CFA_val_offset_sf:
            reg = get_uleb(c);
            get_sleb(c);
            set_reg(m, reg, R_OTHER, 0);
            break;
        case DW_CFA_expression:
        case DW_CFA_val_expression:
            reg = get_uleb(c);
            skip_block(c);
            set_reg(m, reg, R_OTHER, 0);
            break;
        case DW_CFA_remember_state:
            if (m->nsaved == STATE_STACK)
                return -1;
            m->saved[m->nsaved++] = m->cur;
            break;
        case DW_CFA_restore_state:
            if (m->nsaved == 0)
                return -1;
            m->cur = m->saved[--m->nsaved];
            break;
        case DW_CFA_def_cfa:
            m->cur.cfa_expr = 0;
            m->cur.cfa_reg = get_uleb(c);
            m->cur.cfa_off = (int64_t)get_uleb(c);
            break;
        case DW_CFA_def_cfa_sf:
            m->cur.cfa_expr = 0;
            m->cur.cfa_reg = get_uleb(c);
            m->cur.cfa_off = get_sleb(c) * m->data_align;
            break;
        case DW_CFA_def_cfa_register:
            if (m->cur.cfa_expr)
                return -1;
            m->cur.cfa_reg = get_uleb(c);
            break;
        case DW_CFA_def_cfa_offset:
            if (m->cur.cfa_expr)
                return -1;
            m->cur.cfa_off = (int64_t)get_uleb(c);
            break;
        case DW_CFA_def_cfa_offset_sf:
            if (m->cur.cfa_expr)
                return -1;
            m->cur.cfa_off = get_sleb(c) * m->data_align;
            break;
        case DW_CFA_def_cfa_expression:
            def_cfa_expression(m, c);
            break;
        case DW_CFA_GNU_args_size:
            get_uleb(c);
            break;
        default:
            return -1;
        }
    }
    return c->bad ? -1 : 0;
}

/* --- CIE and FDE --------------------------------------------------------------- */

/* Reads the CIE into m and runs its initial instructions. */
static int read_cie(machine *m, const uint8_t *cie)
{
    cursor c;
    if (entry_at(cie, &c) != 0 || get_fixed(&c, 4) != 0)
        return -1; /* an .eh_frame CIE has id 0 */
    uint8_t version = get_u8(&c);
    if (version != 1 && version != 3 && version != 4)
        return -1;
    const char *aug = (const char *)c.p;
    size_t alen = strnlen(aug, (size_t)(c.end - c.p));
    if (!need(&c, alen + 1))
        return -1;
    c.p += alen + 1;
    if (version == 4 && (get_u8(&c) != 8 || get_u8(&c) != 0))
        return -1; /* address size 8, no segments */
    m->code_align = get_uleb(&c);
    m->data_align = get_sleb(&c);
    m->ra_reg = version == 1 ? get_u8(&c) : get_uleb(&c);
    m->fde_enc = DW_EH_PE_absptr;
    if (aug[0] == 'z') {
        uint64_t len = get_uleb(&c);
        if (!need(&c, len))
            return -1;
        cursor a = {c.p, c.p + len, 0};
        c.p += len;
        for (const char *s = aug + 1; *s && !a.bad; s++) {
            if (*s == 'R')
                m->fde_enc = get_u8(&a);
            else if (*s == 'L')
                get_u8(&a);
            else if (*s == 'P')
                get_encoded(&a, get_u8(&a), 0);
            else if (*s == 'S')
                m->signal = 1;
            else
                break; /* the rest is skipped by length */
        }
    } else if (aug[0]) {
        return -1; /* an augmentation without a length cannot be skipped */
    }
    if (c.bad || (m->fde_enc & DW_EH_PE_indirect))
        return -1;
    /* What the ABI starts with before the CIE says anything: the caller's
     * rbp is the same, the return address is not known. */
    m->cur = (row){.cfa_reg = TM_DW_RSP, .cfa_off = 8, .ra = {R_UNDEF, 0}, .bp = {R_SAME, 0}};
    m->init = m->cur;
    m->loc = 0;
    m->pc = UINTPTR_MAX; /* the CIE's instructions hold from the start */
    if (run(m, &c) != 0)
        return -1;
    m->init = m->cur;
    m->nsaved = 0;
    return 0;
}

/* The rule of the row, in the walker's terms. */
static tm_cfi_rule rule_of(const machine *m)
{
    tm_cfi_rule r = {.kind = TM_CFI_BAD};
    if (m->signal)
        return (tm_cfi_rule){.kind = TM_CFI_SIGNAL};
    if (m->ra_reg != TM_DW_RA)
        return r;
    const row *w = &m->cur;
    if (w->ra.rule == R_UNDEF || w->ra.rule == R_UNSPEC)
        return (tm_cfi_rule){.kind = TM_CFI_END};
    if (w->ra.rule != R_OFFSET || w->ra.off != -8)
        return r;
    if (w->cfa_expr || (w->cfa_reg != TM_DW_RSP && w->cfa_reg != TM_DW_RBP) || w->cfa_off < 0 ||
        w->cfa_off > INT32_MAX)
        return r;
    switch (w->bp.rule) {
    case R_UNSPEC:
    case R_SAME:
        r.bp_rule = TM_BP_SAME;
        break;
    case R_UNDEF:
        r.bp_rule = TM_BP_UNDEF;
        break;
    case R_OFFSET:
        if (w->bp.off >= 0 || w->bp.off < INT16_MIN)
            return r;
        r.bp_rule = TM_BP_AT;
        r.bp_off = (int16_t)w->bp.off;
        break;
    default:
        return r;
    }
    r.kind = TM_CFI_OK;
    r.cfa_reg = (uint8_t)w->cfa_reg;
    r.cfa_off = (int32_t)w->cfa_off;
    return r;
}

/* The rule at pc from the FDE at fde, or TM_CFI_NONE when it does not
 * cover pc. */
static tm_cfi_rule eval_fde(const uint8_t *fde, uintptr_t pc, uintptr_t datarel)
{
    tm_cfi_rule bad = {.kind = TM_CFI_BAD};
    cursor c;
    if (entry_at(fde, &c) != 0)
        return bad;
    const uint8_t *id_at = c.p;
    uint32_t cie_off = (uint32_t)get_fixed(&c, 4);
    if (c.bad || cie_off == 0)
        return bad; /* a CIE where an FDE should be */
    machine m = {.datarel = datarel};
    if (read_cie(&m, id_at - cie_off) != 0)
        return bad;
    uintptr_t start = get_encoded(&c, m.fde_enc, datarel);
    uintptr_t range = get_encoded(&c, m.fde_enc & 0x0f, datarel);
    if (c.bad)
        return bad;
    if (pc < start || pc - start >= range)
        return (tm_cfi_rule){.kind = TM_CFI_NONE};
    if (m.signal) /* the trampoline's registers are in its ucontext */
        return rule_of(&m);
    skip_block(&c); /* the 'z' augmentation data (the CIE has 'z': checked) */
    m.loc = start;
    m.pc = pc;
    if (run(&m, &c) != 0)
        return bad;
    return rule_of(&m);
}

/* --- the search table ----------------------------------------------------------- */

typedef struct table {
    const int32_t *pairs; /* (initial location, FDE), relative to the header */
    size_t n;
} table;

/* The binary search table of an .eh_frame_hdr, in the one encoding
 * linkers write (sdata4, relative to the header). */
static int table_of(const uint8_t *hdr, table *t)
{
    cursor c = {hdr, hdr + 64, 0};
    uint8_t version = get_u8(&c), ptr_enc = get_u8(&c), count_enc = get_u8(&c),
            table_enc = get_u8(&c);
    if (version != 1 || table_enc != (DW_EH_PE_datarel | DW_EH_PE_sdata4))
        return -1;
    get_encoded(&c, ptr_enc, (uintptr_t)hdr);
    uint64_t n = get_encoded(&c, count_enc, (uintptr_t)hdr);
    if (c.bad || n > (1u << 28))
        return -1;
    t->pairs = (const int32_t *)c.p;
    t->n = (size_t)n;
    return 0;
}

TM_HIDDEN tm_cfi_rule tm_cfi_eval(const uint8_t *hdr, uintptr_t pc)
{
    table t;
    if (table_of(hdr, &t) != 0)
        return (tm_cfi_rule){.kind = TM_CFI_BAD};
    uintptr_t base = (uintptr_t)hdr;
    /* The last FDE that starts at or before pc. */
    size_t lo = 0, hi = t.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (base + (intptr_t)t.pairs[2 * mid] <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return (tm_cfi_rule){.kind = TM_CFI_NONE};
    return eval_fde((const uint8_t *)(base + (intptr_t)t.pairs[2 * (lo - 1) + 1]), pc, base);
}

TM_HIDDEN size_t tm_cfi_fde_count(const uint8_t *hdr)
{
    table t;
    return table_of(hdr, &t) == 0 ? t.n : 0;
}

TM_HIDDEN int tm_cfi_fde_span(const uint8_t *hdr, size_t i, uintptr_t *lo, uintptr_t *hi)
{
    table t;
    if (table_of(hdr, &t) != 0 || i >= t.n)
        return -1;
    const uint8_t *fde = (const uint8_t *)((uintptr_t)hdr + (intptr_t)t.pairs[2 * i + 1]);
    cursor c;
    if (entry_at(fde, &c) != 0)
        return -1;
    const uint8_t *id_at = c.p;
    uint32_t cie_off = (uint32_t)get_fixed(&c, 4);
    machine m = {.datarel = (uintptr_t)hdr};
    if (c.bad || cie_off == 0 || read_cie(&m, id_at - cie_off) != 0)
        return -1;
    *lo = get_encoded(&c, m.fde_enc, (uintptr_t)hdr);
    *hi = *lo + get_encoded(&c, m.fde_enc & 0x0f, (uintptr_t)hdr);
    return c.bad ? -1 : 0;
}

/* --- the module holding an address ------------------------------------------------- */

typedef struct lookup {
    uintptr_t pc;
    tm_cfi_rule rule;
} lookup;

/* Inside dl_iterate_phdr the loader holds its lock: the module cannot be
 * unmapped while its tables are read. */
static int lookup_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    lookup *l = arg;
    const ElfW(Phdr) *eh = NULL;
    int hit = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t s = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && l->pc >= s && l->pc - s < ph->p_memsz)
            hit = 1;
        else if (ph->p_type == PT_GNU_EH_FRAME)
            eh = ph;
    }
    if (!hit)
        return 0;
    if (eh)
        l->rule = tm_cfi_eval((const uint8_t *)(info->dlpi_addr + eh->p_vaddr), l->pc);
    return 1;
}

TM_HIDDEN tm_cfi_rule tm_cfi_rule_at(uintptr_t pc)
{
    lookup l = {.pc = pc, .rule = {.kind = TM_CFI_NONE}};
    dl_iterate_phdr(lookup_module, &l);
    return l.rule;
}
