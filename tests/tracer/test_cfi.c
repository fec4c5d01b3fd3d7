/* test_cfi.c — the tracer's own CFI interpreter (tracer/src/cfi.c) against
 * libdw as an oracle: at every address covered by every FDE of libc and
 * libpython, as loaded in this process, both must give the same rule
 * (CFA register and offset, return address at CFA - 8 or the outermost
 * frame, where the caller's rbp is) or both refuse it.  libunwind, a
 * second oracle, must find the same FDE range for each FDE's first
 * address.  Prints the number of addresses checked; exits 1 on any
 * difference (the first few shown).
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <libunwind.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_cfi.h"

/* libdw's answer in the tracer's terms: the walker took exactly these
 * rules from libdw before it had its own interpreter. */
static tm_cfi_rule oracle_rule(Dwarf_CFI *cfi, Dwarf_Addr pc)
{
    tm_cfi_rule r = {.kind = TM_CFI_BAD};
    Dwarf_Frame *f = NULL;
    if (dwarf_cfi_addrframe(cfi, pc, &f) != 0)
        return r;
    Dwarf_Addr start, end;
    bool signal_frame = false;
    Dwarf_Op *ops, mem[3];
    size_t n;
    if (dwarf_frame_info(f, &start, &end, &signal_frame) != TM_DW_RA || signal_frame)
        goto out;
    if (dwarf_frame_register(f, TM_DW_RA, mem, &ops, &n) != 0)
        goto out;
    if (n == 0 && ops == mem) {
        r.kind = TM_CFI_END;
        goto out;
    }
    if (!(n == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst &&
          (int64_t)ops[1].number == -8))
        goto out;
    if (dwarf_frame_cfa(f, &ops, &n) != 0 || n != 1)
        goto out;
    uint64_t reg;
    int64_t off;
    if (ops[0].atom == DW_OP_bregx) {
        reg = ops[0].number;
        off = (int64_t)ops[0].number2;
    } else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
        reg = ops[0].atom - DW_OP_breg0;
        off = (int64_t)ops[0].number;
    } else {
        goto out;
    }
    if ((reg != TM_DW_RSP && reg != TM_DW_RBP) || off < 0 || off > INT32_MAX)
        goto out;
    if (dwarf_frame_register(f, TM_DW_RBP, mem, &ops, &n) != 0)
        goto out;
    if (n == 0) {
        r.bp_rule = ops == NULL ? TM_BP_SAME : TM_BP_UNDEF;
    } else if (n == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst &&
               (int64_t)ops[1].number >= INT16_MIN && (int64_t)ops[1].number < 0) {
        r.bp_rule = TM_BP_AT;
        r.bp_off = (int16_t)(int64_t)ops[1].number;
    } else {
        goto out;
    }
    r.kind = TM_CFI_OK;
    r.cfa_reg = (uint8_t)reg;
    r.cfa_off = (int32_t)off;
out:
    free(f);
    return r;
}

/* Signal frames: libdw's rules there are expressions the walker never
 * took from it; the tracer reads the ucontext instead.  No FDE: both
 * refuse. */
static tm_cfi_rule as_oracle_sees(tm_cfi_rule r)
{
    if (r.kind == TM_CFI_SIGNAL || r.kind == TM_CFI_NONE)
        return (tm_cfi_rule){.kind = TM_CFI_BAD};
    if (r.kind != TM_CFI_OK)
        return (tm_cfi_rule){.kind = r.kind};
    return r;
}

static int same(tm_cfi_rule a, tm_cfi_rule b)
{
    return a.kind == b.kind && a.cfa_reg == b.cfa_reg && a.cfa_off == b.cfa_off &&
           a.bp_rule == b.bp_rule && a.bp_off == b.bp_off;
}

typedef struct module {
    const char *want; /* a part of its path */
    char path[4096];
    uintptr_t bias;
    const uint8_t *hdr;
} module;

static int find(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    module *m = arg;
    if (!info->dlpi_name || !strstr(info->dlpi_name, m->want))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME)
            m->hdr = (const uint8_t *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    m->bias = info->dlpi_addr;
    snprintf(m->path, sizeof m->path, "%s", info->dlpi_name);
    return 1;
}

static void show(const char *who, tm_cfi_rule r)
{
    fprintf(stderr, " %s kind %d cfa r%d+%d bp %d@%d", who, r.kind, r.cfa_reg, r.cfa_off,
            r.bp_rule, r.bp_off);
}

/* Checks every address of every FDE of the module; returns mismatches. */
static long check_module(const char *want, long *pcs, long *kinds)
{
    module m = {.want = want};
    dl_iterate_phdr(find, &m);
    if (!m.hdr) {
        fprintf(stderr, "test_cfi: %s not loaded or without .eh_frame_hdr\n", want);
        return 1;
    }
    elf_version(EV_CURRENT);
    int fd = open(m.path, O_RDONLY | O_CLOEXEC);
    Elf *elf = fd >= 0 ? elf_begin(fd, ELF_C_READ_MMAP, NULL) : NULL;
    Dwarf_CFI *cfi = elf ? dwarf_getcfi_elf(elf) : NULL;
    if (!cfi) {
        fprintf(stderr, "test_cfi: libdw cannot read the CFI of %s\n", m.path);
        return 1;
    }
    size_t n = tm_cfi_fde_count(m.hdr);
    long bad = 0, checked = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t lo, hi;
        if (tm_cfi_fde_span(m.hdr, i, &lo, &hi) != 0) {
            fprintf(stderr, "test_cfi: %s: FDE %zu unreadable\n", m.path, i);
            bad++;
            continue;
        }
        unw_proc_info_t pi;
        if (unw_get_proc_info_by_ip(unw_local_addr_space, lo, &pi, NULL) != 0 ||
            pi.start_ip != lo || pi.end_ip != hi) {
            if (bad++ < 10)
                fprintf(stderr, "test_cfi: %s+0x%lx: FDE to +0x%lx, libunwind's +0x%lx..+0x%lx\n",
                        m.path, (unsigned long)(lo - m.bias), (unsigned long)(hi - m.bias),
                        (unsigned long)(pi.start_ip - m.bias), (unsigned long)(pi.end_ip - m.bias));
        }
        for (uintptr_t pc = lo; pc < hi; pc++, checked++) {
            tm_cfi_rule mine = tm_cfi_eval(m.hdr, pc), seen = as_oracle_sees(mine);
            tm_cfi_rule want_r = oracle_rule(cfi, pc - m.bias);
            kinds[mine.kind]++;
            if (same(seen, want_r))
                continue;
            if (bad++ < 10) {
                fprintf(stderr, "test_cfi: %s+0x%lx:", m.path, (unsigned long)(pc - m.bias));
                show("ours", mine);
                show("libdw", want_r);
                fputc('\n', stderr);
            }
        }
    }
    printf("%s: %zu FDEs, %ld addresses, %ld differences\n", m.path, n, checked, bad);
    *pcs += checked;
    dwarf_cfi_end(cfi);
    elf_end(elf);
    close(fd);
    return n == 0 ? bad + 1 : bad;
}

int main(void)
{
    if (!dlopen("libpython3.11.so.1.0", RTLD_NOW)) {
        fprintf(stderr, "test_cfi: %s\n", dlerror());
        return 1;
    }
    long pcs = 0, kinds[5] = {0};
    long bad = check_module("libc.so.6", &pcs, kinds) + check_module("libpython3", &pcs, kinds);
    printf("rules: %ld ok, %ld end, %ld bad, %ld signal, %ld none\n", kinds[TM_CFI_OK],
           kinds[TM_CFI_END], kinds[TM_CFI_BAD], kinds[TM_CFI_SIGNAL], kinds[TM_CFI_NONE]);
    /* The signal trampoline is in libc: a reader that lost it would
     * unwind no handler. */
    if (kinds[TM_CFI_SIGNAL] == 0) {
        fprintf(stderr, "test_cfi: no signal frame found in libc\n");
        bad++;
    }
    return bad ? 1 : 0;
}
