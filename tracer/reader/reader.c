/* reader.c — decodes a trace file into events.
 *
 * Blocks are read with pread into a small reorder window (the crash path
 * may write the last block before its neighbour), decompressed, then
 * decoded record by record on demand.  Definitions (strings, stack nodes,
 * modules, threads) are kept in tables; events are handed out one at a time,
 * so memory follows the tables, not the trace length.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "tm_reader.h"
#include "tm_reader_internal.h"

/* Blocks held back to put neighbours swapped by the crash path in order. */
#define WINDOW 4
/* Largest stored payload accepted: a raw block plus zstd's worst case. */
#define STORED_MAX (TM_BLOCK_MAX_RAW + (TM_BLOCK_MAX_RAW >> 7) + 1024)
#define SCAN_CHUNK 65536

typedef struct pending {
    uint32_t seq;
    uint16_t codec;
    uint32_t raw_len;
    uint32_t len;
    uint8_t *data;
    size_t cap;
} pending;

struct tm_reader {
    int fd;
    char *path;
    uint64_t file_size;
    uint64_t pos;               /* next byte to scan for a block */
    tm_file_header hdr;

    enum tm_read_state state;
    char error[256];
    bool ended;                 /* END record seen */
    bool ids_checked;
    bool blocks_done;           /* no more blocks in the file */

    pending win[WINDOW];
    int nwin;
    uint32_t next_seq;
    bool any_block;

    /* The block being decoded. */
    uint8_t *raw;
    size_t raw_cap;
    const uint8_t *p, *end;
    uint64_t prev_addr, prev_tick;
    int64_t thread;             /* dense index, -1 = unknown */
    uint32_t pending_py;        /* PY_STACK for the next ALLOC */
    uint64_t hwm_bytes;         /* HWM record, 0 = none yet */
    double ns_per_tick;

    tm_reader_tables t;
    tm_read_stats stats;
};

static void set_problem(tm_reader *r, enum tm_read_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reader_next(tm_reader *r, tm_event *ev);

static void set_problem(tm_reader *r, enum tm_read_state st, const char *fmt, ...)
{
    if (st > r->state)
        r->state = st;
    if (r->error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

static int read_at(int fd, uint64_t off, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (int)done;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    uint8_t *b = realloc(*buf, n);
    if (!b)
        return -ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

/* --- opening ---------------------------------------------------------------- */

int tm_reader_open(const char *path, tm_reader **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer before
     * fstat could say it is no trace.  Regular files ignore the flag. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st = {0};
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(errbuf, errlen, "%s: not a regular file (%s)", path,
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" :
                 S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" :
                 S_ISSOCK(st.st_mode) ? "a socket" : "not a trace");
        close(fd);
        return -EINVAL;
    }
    tm_file_header h;
    int n = read_at(fd, 0, &h, sizeof h);
    if (n < 8 || memcmp(h.magic, TM_MAGIC, 8) != 0) {
        snprintf(errbuf, errlen, "%s: not a tidemark trace (bad magic)", path);
        close(fd);
        return -EINVAL;
    }
    if (n < (int)sizeof h) {
        snprintf(errbuf, errlen, "%s: truncated trace (file header incomplete)", path);
        close(fd);
        return -EINVAL;
    }
    if (h.version < TM_FORMAT_VERSION_MIN || h.version > TM_FORMAT_VERSION) {
        snprintf(errbuf, errlen,
                 "%s: trace format version %u, this tidemark reads versions %u to %u", path,
                 h.version, TM_FORMAT_VERSION_MIN, TM_FORMAT_VERSION);
        close(fd);
        return -EPROTO;
    }
    if (h.header_size < sizeof h || h.header_size > 4096) {
        snprintf(errbuf, errlen, "%s: corrupt trace (header size %u)", path, h.header_size);
        close(fd);
        return -EINVAL;
    }
    tm_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        close(fd);
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    r->fd = fd;
    r->hdr = h;
    r->file_size = (uint64_t)st.st_size;
    r->pos = h.header_size;
    r->thread = -1;
    if (tm_tables_init(&r->t) < 0) {
        tm_reader_close(r);
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void tm_reader_close(tm_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    for (int i = 0; i < WINDOW; i++)
        free(r->win[i].data);
    free(r->raw);
    free(r->path);
    tm_tables_free(&r->t);
    free(r);
}

/* --- blocks ----------------------------------------------------------------- */

/* Offset of the next block magic at or after `from`, or file_size. */
static uint64_t resync(tm_reader *r, uint64_t from)
{
    uint8_t buf[SCAN_CHUNK];
    const uint32_t magic = TM_BLOCK_MAGIC;
    while (from + 4 <= r->file_size) {
        int n = read_at(r->fd, from, buf, sizeof buf);
        if (n < 4)
            break;
        void *hit = memmem(buf, (size_t)n, &magic, 4);
        if (hit)
            return from + (uint64_t)((uint8_t *)hit - buf);
        from += (uint64_t)n - 3;
    }
    return r->file_size;
}

/* Reads the next intact block from the file into slot *pd.  Returns 1, or 0
 * when the file has no more blocks. */
static int read_block(tm_reader *r, pending *pd)
{
    while (r->pos < r->file_size) {
        tm_block_header bh;
        uint64_t at = r->pos;
        int n = read_at(r->fd, at, &bh, sizeof bh);
        if (n < (int)sizeof bh) {
            set_problem(r, TM_READ_TRUNCATED,
                        "trace ends inside a block header at byte %llu",
                        (unsigned long long)at);
            r->pos = r->file_size;
            return 0;
        }
        if (bh.magic != TM_BLOCK_MAGIC || bh.type != TM_BLOCK_RECORDS ||
            bh.codec > TM_CODEC_ZSTD || bh.raw_len > TM_BLOCK_MAX_RAW + 64 ||
            bh.stored_len > STORED_MAX) {
            set_problem(r, TM_READ_DAMAGED, "corrupt block header at byte %llu",
                        (unsigned long long)at);
            r->stats.blocks_skipped++;
            r->pos = resync(r, at + 1);
            continue;
        }
        if (at + sizeof bh + bh.stored_len > r->file_size) {
            set_problem(r, TM_READ_TRUNCATED,
                        "trace ends inside block %u (process killed or file cut)", bh.seq);
            r->pos = r->file_size;
            return 0;
        }
        if (grow(&pd->data, &pd->cap, bh.stored_len ? bh.stored_len : 1) < 0)
            return 0;
        n = read_at(r->fd, at + sizeof bh, pd->data, bh.stored_len);
        if (n < (int)bh.stored_len ||
            tm_crc32c(0, pd->data, bh.stored_len) != bh.checksum) {
            set_problem(r, TM_READ_DAMAGED, "checksum mismatch in block %u at byte %llu",
                        bh.seq, (unsigned long long)at);
            r->stats.blocks_skipped++;
            r->pos = resync(r, at + 1);
            continue;
        }
        r->pos = at + sizeof bh + bh.stored_len;
        pd->seq = bh.seq;
        pd->codec = bh.codec;
        pd->raw_len = bh.raw_len;
        pd->len = bh.stored_len;
        return 1;
    }
    return 0;
}

/* Fills the window, then takes the block with the lowest sequence number
 * into the decode buffer.  Returns 1, or 0 at the end. */
static int next_block(tm_reader *r)
{
    for (;;) {
        while (!r->blocks_done && r->nwin < WINDOW) {
            /* Stop filling once the expected block is at hand. */
            bool have_next = false;
            for (int i = 0; i < r->nwin; i++)
                have_next |= r->win[i].seq == r->next_seq;
            if (have_next && r->any_block)
                break;
            if (!read_block(r, &r->win[r->nwin])) {
                r->blocks_done = true;
                break;
            }
            pending *pd = &r->win[r->nwin];
            bool dup = r->any_block && pd->seq < r->next_seq;
            for (int i = 0; i < r->nwin && !dup; i++)
                dup = r->win[i].seq == pd->seq;
            if (dup) {
                set_problem(r, TM_READ_DAMAGED, "block %u appears twice", pd->seq);
                continue;
            }
            r->nwin++;
        }
        if (r->nwin == 0)
            return 0;
        int best = 0;
        for (int i = 1; i < r->nwin; i++)
            if (r->win[i].seq < r->win[best].seq)
                best = i;
        pending blk = r->win[best];
        r->win[best] = r->win[r->nwin - 1];
        r->win[r->nwin - 1] = blk;      /* keep its buffer for reuse */
        r->nwin--;
        if (r->any_block && blk.seq != r->next_seq)
            set_problem(r, TM_READ_DAMAGED, "blocks %u to %u are missing",
                        r->next_seq, blk.seq - 1);
        r->any_block = true;
        r->next_seq = blk.seq + 1;

        if (grow(&r->raw, &r->raw_cap, blk.raw_len + 1) < 0)
            return 0;
        size_t raw_len;
        if (blk.codec == TM_CODEC_ZSTD) {
            raw_len = ZSTD_decompress(r->raw, r->raw_cap, blk.data, blk.len);
            if (ZSTD_isError(raw_len) || raw_len != blk.raw_len) {
                set_problem(r, TM_READ_DAMAGED, "block %u does not decompress", blk.seq);
                r->stats.blocks_skipped++;
                continue;
            }
        } else {
            if (blk.len != blk.raw_len) {
                set_problem(r, TM_READ_DAMAGED, "block %u has inconsistent lengths", blk.seq);
                r->stats.blocks_skipped++;
                continue;
            }
            memcpy(r->raw, blk.data, blk.len);
            raw_len = blk.len;
        }
        r->stats.blocks++;
        r->stats.bytes += sizeof(tm_block_header) + blk.len;
        r->p = r->raw;
        r->end = r->raw + raw_len;
        r->prev_addr = 0;
        r->prev_tick = r->hdr.start_tick;
        r->thread = -1;
        r->pending_py = 0;
        r->ns_per_tick = (r->hdr.flags & TM_FLAG_TICKS_ARE_NS) ? 1.0 : 0.0;
        /* The CLOCK record leads every block; it calibrates the ticks of
         * the whole block. */
        uint64_t tick, ns;
        if (r->p < r->end && *r->p == TM_OP_CLOCK) {
            const uint8_t *q = r->p + 1;
            if (tm_get_u(&q, r->end, &tick) == 0 && tm_get_u(&q, r->end, &ns) == 0) {
                r->p = q;
                if (!(r->hdr.flags & TM_FLAG_TICKS_ARE_NS) && tick > r->hdr.start_tick &&
                    ns > r->hdr.start_ns)
                    r->ns_per_tick = (double)(ns - r->hdr.start_ns) /
                                     (double)(tick - r->hdr.start_tick);
                if (ns > r->hdr.start_ns && ns - r->hdr.start_ns > r->t.last_clock_ns)
                    r->t.last_clock_ns = ns - r->hdr.start_ns;
            }
        }
        return 1;
    }
}

/* --- records ------------------------------------------------------------------ */

static uint64_t tick_to_ns(const tm_reader *r, uint64_t tick)
{
    if (tick <= r->hdr.start_tick)
        return 0;
    return (uint64_t)((double)(tick - r->hdr.start_tick) * r->ns_per_tick);
}

static int take_ts(tm_reader *r, const uint8_t **q, tm_event *ev)
{
    uint64_t d;
    if (tm_get_u(q, r->end, &d) < 0)
        return -1;
    r->prev_tick += d;
    ev->time_ns = tick_to_ns(r, r->prev_tick);
    return 0;
}

static int take_addr(tm_reader *r, const uint8_t **q, tm_event *ev)
{
    int64_t d;
    if (tm_get_s(q, r->end, &d) < 0)
        return -1;
    r->prev_addr += (uint64_t)d;
    ev->addr = r->prev_addr;
    return 0;
}

/* Fills the thread and region fields of an event of the current thread. */
static void stamp_thread(tm_reader *r, tm_event *ev)
{
    if (r->thread < 0) {
        ev->thread = TM_THREAD_UNKNOWN;
        return;
    }
    ev->thread = (uint32_t)r->thread;
    const tm_thread_state *th = &r->t.threads[r->thread];
    if (th->depth > 0 && th->depth <= th->cap) {
        ev->region = th->regions[th->depth - 1].name;
        ev->invocation = th->regions[th->depth - 1].invocation;
    }
    ev->depth = th->depth;
}

static int get_bytes(tm_reader *r, const uint8_t **q, const uint8_t **bytes, uint64_t *len)
{
    if (tm_get_u(q, r->end, len) < 0 || *len > (uint64_t)(r->end - *q))
        return -1;
    *bytes = *q;
    *q += *len;
    return 0;
}

/* True when a definition could not be stored; an id out of range gets its
 * own message (the caller's "malformed record" would hide why). */
static bool define_failed(tm_reader *r, const char *kind, uint64_t id, int rc)
{
    if (rc == -ERANGE)
        set_problem(r, TM_READ_DAMAGED,
                    "%s id %llu in block %u is out of range (ids are below 2^28)",
                    kind, (unsigned long long)id, r->next_seq - 1);
    return rc < 0;
}

/* Decodes one record.  Returns 1 when *ev is an event to hand out, 0 for a
 * definition, -1 when the block is malformed from here on. */
static int decode_one(tm_reader *r, tm_event *ev)
{
    const uint8_t *q = r->p;
    uint8_t op = *q++;
    uint64_t a, b, c;
    memset(ev, 0, sizeof *ev);
    int rc = 0;

    if ((op & 0xf0) == TM_OP_ALLOC) {
        if ((op & 0x0f) >= TM_ALLOC_CODES || tm_get_u(&q, r->end, &a) < 0 ||
            take_addr(r, &q, ev) < 0 || take_ts(r, &q, ev) < 0 ||
            tm_get_u(&q, r->end, &b) < 0 || b > UINT32_MAX)
            return -1;
        ev->kind = TM_EV_ALLOC;
        ev->fn = op & 0x0f;
        if (op >= TM_OP_PY_ALLOC) { /* a Python domain's: its fn is malloc's, calloc's or realloc's */
            unsigned k = op - TM_OP_PY_ALLOC;
            ev->domain = TM_DOMAIN_PYMEM + k / 3;
            ev->fn = k % 3;
        }
        ev->size = a;
        ev->stack = (uint32_t)b;
        ev->pystack = r->pending_py;
        r->pending_py = 0;
        stamp_thread(r, ev);
        rc = 1;
    } else {
        switch (op) {
        case TM_OP_FREE:
        case TM_OP_REALLOC_FREE:
        case TM_OP_REALLOC_FAIL:
            if (take_addr(r, &q, ev) < 0 || take_ts(r, &q, ev) < 0)
                return -1;
            ev->kind = op == TM_OP_REALLOC_FAIL ? TM_EV_REALLOC_FAIL : TM_EV_FREE;
            ev->fn = op == TM_OP_REALLOC_FREE ? TM_FN_REALLOC : TM_FN_FREE;
            stamp_thread(r, ev);
            rc = 1;
            break;
        case TM_OP_PY_FREE:
        case TM_OP_PY_FREE + 1:
        case TM_OP_PY_FREE + 2:
        case TM_OP_PY_FREE + 3:
        case TM_OP_PY_FREE + 4:
        case TM_OP_PY_FREE + 5: {
            unsigned k = op - TM_OP_PY_FREE;
            if (take_addr(r, &q, ev) < 0 || take_ts(r, &q, ev) < 0)
                return -1;
            ev->kind = k % 3 == 2 ? TM_EV_REALLOC_FAIL : TM_EV_FREE;
            ev->fn = k % 3 == 1 ? TM_FN_REALLOC : TM_FN_FREE;
            ev->domain = TM_DOMAIN_PYMEM + k / 3;
            stamp_thread(r, ev);
            rc = 1;
            break;
        }
        case TM_OP_THREAD:
            if (tm_get_u(&q, r->end, &a) < 0 || a > UINT32_MAX)
                return -1;
            r->thread = tm_tables_thread(&r->t, (uint32_t)a);
            if (r->thread < 0)
                return -1;
            break;
        case TM_OP_REGION_BEGIN:
            if (tm_get_u(&q, r->end, &a) < 0 || tm_get_u(&q, r->end, &b) < 0 ||
                take_ts(r, &q, ev) < 0 || a > UINT32_MAX || r->thread < 0)
                return -1;
            if (tm_tables_region_push(&r->t, (uint32_t)r->thread, (uint32_t)a, b) < 0)
                return -1;
            ev->kind = TM_EV_REGION_BEGIN;
            stamp_thread(r, ev);
            rc = 1;
            break;
        case TM_OP_REGION_END:
            if (take_ts(r, &q, ev) < 0 || r->thread < 0)
                return -1;
            stamp_thread(r, ev);
            if (ev->depth == 0)
                break;          /* unbalanced end: nothing to close */
            ev->kind = TM_EV_REGION_END;
            r->t.threads[r->thread].depth--;
            rc = 1;
            break;
        case TM_OP_MARK:
            if (tm_get_u(&q, r->end, &a) < 0 || take_ts(r, &q, ev) < 0 || a > UINT32_MAX)
                return -1;
            ev->kind = TM_EV_MARK;
            ev->label = (uint32_t)a;
            stamp_thread(r, ev);
            rc = 1;
            break;
        case TM_OP_STRING: {
            const uint8_t *s;
            if (tm_get_u(&q, r->end, &a) < 0 || a == 0 || a > UINT32_MAX ||
                get_bytes(r, &q, &s, &b) < 0)
                return -1;
            if (define_failed(r, "string", a,
                              tm_tables_string(&r->t, (uint32_t)a, (const char *)s, (size_t)b)))
                return -1;
            break;
        }
        case TM_OP_STACK_NODE:
            if (tm_get_u(&q, r->end, &a) < 0 || tm_get_u(&q, r->end, &b) < 0 ||
                tm_get_u(&q, r->end, &c) < 0 || a == 0 || a > UINT32_MAX || b > UINT32_MAX)
                return -1;
            if (define_failed(r, "stack node", a,
                              tm_tables_node(&r->t, (uint32_t)a, (uint32_t)b, c)))
                return -1;
            break;
        case TM_OP_PY_FRAME: {
            uint64_t id, parent, file, func, line, flags;
            if (tm_get_u(&q, r->end, &id) < 0 || tm_get_u(&q, r->end, &parent) < 0 ||
                tm_get_u(&q, r->end, &file) < 0 || tm_get_u(&q, r->end, &func) < 0 ||
                tm_get_u(&q, r->end, &line) < 0 || tm_get_u(&q, r->end, &flags) < 0 ||
                id == 0 || id > UINT32_MAX || parent > UINT32_MAX || file > UINT32_MAX ||
                func > UINT32_MAX || line > UINT32_MAX)
                return -1;
            tm_py_node n = {.parent = (uint32_t)parent, .file = (uint32_t)file,
                            .func = (uint32_t)func, .line = (uint32_t)line,
                            .flags = (uint32_t)flags};
            if (define_failed(r, "Python frame", id, tm_tables_py_node(&r->t, (uint32_t)id, &n)))
                return -1;
            break;
        }
        case TM_OP_PY_STACK:
            if (tm_get_u(&q, r->end, &a) < 0 || a > UINT32_MAX)
                return -1;
            r->pending_py = (uint32_t)a;
            break;
        case TM_OP_MAP_RESET:
            tm_tables_map_reset(&r->t);
            break;
        case TM_OP_STACK_RESET:
            if (tm_get_u(&q, r->end, &a) < 0 || tm_get_u(&q, r->end, &b) < 0 || a == 0 ||
                a > UINT32_MAX || b > 1)
                return -1;
            tm_tables_stack_reset(&r->t, (uint32_t)a, (int)b);
            break;
        case TM_OP_MODULE: {
            const uint8_t *id, *path;
            uint64_t idlen, pathlen;
            if (tm_get_u(&q, r->end, &a) < 0 || tm_get_u(&q, r->end, &b) < 0 ||
                tm_get_u(&q, r->end, &c) < 0 || get_bytes(r, &q, &id, &idlen) < 0 ||
                get_bytes(r, &q, &path, &pathlen) < 0 || idlen > TM_BUILD_ID_MAX)
                return -1;
            if (tm_tables_module(&r->t, a, b, c, id, (uint32_t)idlen, (const char *)path,
                                 (size_t)pathlen) < 0)
                return -1;
            break;
        }
        case TM_OP_RSS:
            if (tm_get_u(&q, r->end, &a) < 0 || take_ts(r, &q, ev) < 0)
                return -1;
            ev->kind = TM_EV_RSS;
            ev->size = a;
            ev->thread = TM_THREAD_UNKNOWN;
            rc = 1;
            break;
        case TM_OP_MMAP:
        case TM_OP_MUNMAP:
            if (take_addr(r, &q, ev) < 0 || tm_get_u(&q, r->end, &a) < 0 ||
                take_ts(r, &q, ev) < 0)
                return -1;
            if (op == TM_OP_MMAP && (tm_get_u(&q, r->end, &b) < 0 || b > UINT32_MAX))
                return -1;
            ev->kind = op == TM_OP_MMAP ? TM_EV_MMAP : TM_EV_MUNMAP;
            ev->size = a;
            ev->stack = op == TM_OP_MMAP ? (uint32_t)b : 0;
            stamp_thread(r, ev);
            rc = 1;
            break;
        case TM_OP_MREMAP: {
            uint64_t flags;
            if (take_addr(r, &q, ev) < 0 || tm_get_u(&q, r->end, &a) < 0)
                return -1;
            uint64_t old = ev->addr;
            if (take_addr(r, &q, ev) < 0 || tm_get_u(&q, r->end, &b) < 0 ||
                tm_get_u(&q, r->end, &flags) < 0 || take_ts(r, &q, ev) < 0 ||
                tm_get_u(&q, r->end, &c) < 0 || c > UINT32_MAX || flags > UINT32_MAX)
                return -1;
            ev->kind = TM_EV_MREMAP;
            ev->addr2 = ev->addr;
            ev->size2 = b;
            ev->addr = old;
            ev->size = a;
            ev->fn = (uint32_t)flags;
            ev->stack = (uint32_t)c;
            stamp_thread(r, ev);
            rc = 1;
            break;
        }
        case TM_OP_CLOCK:
            if (tm_get_u(&q, r->end, &a) < 0 || tm_get_u(&q, r->end, &b) < 0)
                return -1;
            break;
        case TM_OP_HWM:
            if (tm_get_u(&q, r->end, &a) < 0)
                return -1;
            if (a > r->hwm_bytes)
                r->hwm_bytes = a;
            break;
        case TM_OP_LOST:
            if (tm_get_u(&q, r->end, &a) < 0 || take_ts(r, &q, ev) < 0)
                return -1;
            ev->kind = TM_EV_LOST;
            ev->size = a;
            ev->thread = TM_THREAD_UNKNOWN;
            rc = 1;
            break;
        case TM_OP_END:
            b = 0;
            if (tm_get_u(&q, r->end, &a) < 0 ||
                (r->hdr.version >= 2 && tm_get_u(&q, r->end, &b) < 0))
                return -1;
            ev->kind = TM_EV_END;
            ev->size = a;
            ev->addr = b;
            ev->time_ns = tick_to_ns(r, r->prev_tick);
            if (r->t.last_clock_ns > ev->time_ns)
                ev->time_ns = r->t.last_clock_ns;
            ev->thread = TM_THREAD_UNKNOWN;
            r->ended = true;
            rc = 1;
            break;
        default:
            return -1;
        }
    }
    r->p = q;
    return rc;
}

/* Once, after the last record: ids far beyond what the whole trace defined
 * mean a corrupt trace (kept sparse while reading, so memory stayed small). */
static void check_ids(tm_reader *r)
{
    uint32_t id, n;
    const char *kind = tm_tables_unjustified(&r->t, &id, &n);
    if (kind)
        set_problem(r, TM_READ_DAMAGED,
                    "%s id %u is beyond the definitions the trace holds (%u of them)", kind, id,
                    n);
}

int tm_reader_next(tm_reader *r, tm_event *ev)
{
    int rc = reader_next(r, ev);
    if (rc == 0 && !r->ids_checked) {
        r->ids_checked = true;
        check_ids(r);
    }
    return rc;
}

static int reader_next(tm_reader *r, tm_event *ev)
{
    while (!r->ended) {
        if (r->p >= r->end) {
            if (!next_block(r)) {
                if (r->state == TM_READ_COMPLETE || !r->error[0])
                    set_problem(r, TM_READ_TRUNCATED,
                                "trace has no end record (process killed or still running)");
                r->ended = true;
                return 0;
            }
            continue;
        }
        int rc = decode_one(r, ev);
        if (rc < 0) {
            set_problem(r, TM_READ_DAMAGED, "malformed record 0x%02x in block %u",
                        *r->p, r->next_seq - 1);
            r->p = r->end;      /* the rest of this block is lost */
            continue;
        }
        if (rc > 0) {
            r->stats.events++;
            return 1;
        }
    }
    return 0;
}

/* --- accessors ----------------------------------------------------------------- */

const tm_file_header *tm_reader_header(const tm_reader *r) { return &r->hdr; }
enum tm_read_state tm_reader_state(const tm_reader *r) { return r->state; }
const char *tm_reader_error(const tm_reader *r) { return r->error; }
const char *tm_reader_path(const tm_reader *r) { return r->path; }
const tm_read_stats *tm_reader_stats(const tm_reader *r) { return &r->stats; }
const tm_reader_tables *tm_reader_tables_of(const tm_reader *r) { return &r->t; }

const char *tm_reader_string(const tm_reader *r, uint32_t id)
{
    return tm_tables_string_of(&r->t, id);
}

uint32_t tm_reader_string_bound(const tm_reader *r) { return r->t.nstrings; }

uint32_t tm_reader_thread_count(const tm_reader *r) { return r->t.nthreads; }

uint64_t tm_reader_hwm_bytes(const tm_reader *r) { return r->hwm_bytes; }

uint32_t tm_reader_stack_resets(const tm_reader *r) { return r->t.stack_resets; }

uint32_t tm_reader_thread_tid(const tm_reader *r, uint32_t thread)
{
    return thread < r->t.nthreads ? r->t.threads[thread].tid : 0;
}

uint32_t tm_reader_stack_parent(const tm_reader *r, uint32_t node)
{
    const tm_node *nd = tm_tables_node_of(&r->t, node);
    return nd ? nd->parent : 0;
}

int tm_reader_stack(const tm_reader *r, uint32_t node, tm_frame_addr *out, int max)
{
    if (node == 0)
        return 0;
    if (!tm_tables_node_of(&r->t, node))
        return -ENOENT;
    int n = 0;
    /* The depth bound also stops a cycle a corrupt trace could create. */
    const tm_node *nd;
    while (node != 0 && n < max && n < 4096 && (nd = tm_tables_node_of(&r->t, node))) {
        out[n].ip = nd->ip;
        out[n].module = nd->module;
        n++;
        node = nd->parent;
    }
    return n;
}

int tm_reader_pyframe(const tm_reader *r, uint32_t node, tm_pyframe *out)
{
    const tm_py_node *n = node ? tm_tables_py_node_of(&r->t, node) : NULL;
    if (!n)
        return -ENOENT;
    const char *file = tm_reader_string(r, n->file), *func = tm_reader_string(r, n->func);
    *out = (tm_pyframe){.file = file ? file : "?", .function = func ? func : "?",
                        .line = n->line, .parent = n->parent, .entry = n->flags & 1};
    return 0;
}

uint32_t tm_reader_module_count(const tm_reader *r) { return r->t.nmodules; }

const tm_module *tm_reader_module(const tm_reader *r, uint32_t index)
{
    return index < r->t.nmodules ? &r->t.modules[index] : NULL;
}

/* "python3.11", "libpython3.12.so.1.0": the interpreter, or a program
 * embedding it. */
static int is_python_module(const char *path)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    return base && (!strncmp(base, "python", 6) || !strncmp(base, "libpython", 9));
}

const char *tm_reader_python_allocator(const tm_reader *r)
{
    static const char prefix[] = "tidemark:python_allocator=";
    const char *mode = NULL;
    /* The latest marker: ids grow in the order the tracer wrote them. */
    for (uint32_t id = 1; id < tm_reader_string_bound(r); id++) {
        const char *s = tm_reader_string(r, id);
        if (s && !strncmp(s, prefix, sizeof prefix - 1))
            mode = s + sizeof prefix - 1;
    }
    if (mode && strcmp(mode, "malloc") && strcmp(mode, "off"))
        return "traced";
    int python = 0;
    for (uint32_t i = 0; i < tm_reader_module_count(r) && !python; i++)
        python = is_python_module(tm_reader_module(r, i)->path);
    if (!python)
        return "none";
    return mode && !strcmp(mode, "malloc") ? "malloc" : "off";
}
