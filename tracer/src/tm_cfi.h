/* tm_cfi.h — unwind rules read from a loaded module's own .eh_frame
 * (cfi.c), for the stack walker (unwind.c). */
#ifndef TM_CFI_H
#define TM_CFI_H

#include <stddef.h>
#include <stdint.h>

#include "tm_internal.h"

/* DWARF numbers of the x86-64 registers a walk tracks. */
enum { TM_DW_RBP = 6, TM_DW_RSP = 7, TM_DW_RA = 16 };

enum tm_cfi_kind {
    TM_CFI_NONE = 0, /* no FDE covers the address */
    TM_CFI_OK,       /* CFA = rsp|rbp + cfa_off, return address at CFA - 8 */
    TM_CFI_END,      /* the return address is undefined: the outermost frame */
    TM_CFI_BAD,      /* a rule the walker does not follow (expressions, ...) */
    TM_CFI_SIGNAL,   /* a signal trampoline: the caller's registers are in a ucontext at rsp */
};
/* Where the caller's rbp is (for TM_CFI_OK). */
enum tm_cfi_bp { TM_BP_SAME = 0, TM_BP_AT, TM_BP_UNDEF };

typedef struct tm_cfi_rule {
    uint8_t kind;
    uint8_t cfa_reg;  /* TM_DW_RSP or TM_DW_RBP */
    uint8_t bp_rule;
    int16_t bp_off;   /* TM_BP_AT: the caller's rbp is at CFA + bp_off */
    int32_t cfa_off;  /* 0 .. INT32_MAX */
} tm_cfi_rule;

/* The rule at pc, from the .eh_frame of the module that holds it, found
 * through dl_iterate_phdr (the loader's lock keeps the module mapped while
 * its tables are read).  Opens no file and allocates nothing. */
TM_HIDDEN tm_cfi_rule tm_cfi_rule_at(uintptr_t pc);

/* The same from one module's .eh_frame_hdr as mapped (PT_GNU_EH_FRAME):
 * exposed for the test that checks the rules against libdw's. */
TM_HIDDEN tm_cfi_rule tm_cfi_eval(const uint8_t *eh_frame_hdr, uintptr_t pc);
/* FDEs in the header's search table, and the address range of the i-th
 * (0 when the table cannot be read). */
TM_HIDDEN size_t tm_cfi_fde_count(const uint8_t *eh_frame_hdr);
TM_HIDDEN int tm_cfi_fde_span(const uint8_t *eh_frame_hdr, size_t i, uintptr_t *lo, uintptr_t *hi);

#endif
