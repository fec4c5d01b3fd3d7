/* writer.c — the tracer's own thread: encodes, compresses and writes sealed
 * chunks to the file, has a partly filled chunk sealed every FLUSH_MS so a
 * killed process leaves a readable trace, and samples RSS every
 * TIDEMARK_RSS_INTERVAL_MS.
 *
 * It is the only thread that normally writes the trace.  It looks for
 * sealed chunks every CLOCK_REFRESH_MS, or every BUSY_POLL_NS while chunks
 * keep coming; producers wake it with a futex when several pile up while it
 * waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "tm_internal.h"
#include "tm_raw.h"

#define FLUSH_MS 100
/* How often the coarse clock (tm_clock_hint) is refreshed, and so how often
 * the thread wakes when nothing wakes it sooner.  Every wake-up of an idle
 * CPU costs the program's CPU too on a virtual machine: a thread waking
 * every millisecond slowed the Burgers run by 2-3% here, every 10 ms by
 * under 1%. */
#define CLOCK_REFRESH_MS 10
#define RETRY_NS 1000000ull
/* After a round that wrote chunks the thread looks again this soon, so that
 * a busy program seldom has to wake it: a futex wake-up costs the recording
 * thread a system call, tens of microseconds on this VM (perf, workload A
 * without stacks: 145 wake-ups took 12 ms of the program's thread).  A
 * program that seals a chunk every few milliseconds or less keeps it
 * polling; one that seals rarely (Burgers: one in 14 ms) costs one extra
 * look per chunk. */
#define BUSY_POLL_NS 250000ull
#define POKE_NS 1000000ull

/* Compression happens only on the writer thread (zstd allocates its
 * context once); crash and fork paths write uncompressed blocks. */
#define ZSTD_LEVEL 1
static TM_TLS ZSTD_CCtx *zctx;
static TM_TLS uint8_t *zbuf;
static TM_TLS size_t zcap;
static TM_TLS int compress_here;

/* Encoded records go after room for the block's CLOCK record.  The writer
 * thread has its own buffer; other threads (no writer yet, exit, crash)
 * share the spare one. */
#define CLOCK_ROOM 32
#define ENC_BYTES (CLOCK_ROOM + TM_BLOCK_MAX_RAW)
static TM_TLS uint8_t *enc_own;
static TM_TLS int is_writer;
static uint8_t *enc_spare;
static int enc_spare_lock;

static struct {
    pthread_t thread;
    int running;        /* atomic */
    int stop;           /* atomic */
    uint32_t wake_word; /* futex */
    int waiting;        /* atomic: the thread may be in its futex wait */
    int statm_fd;
    dev_t statm_dev;
    ino_t statm_ino;
    uint64_t seal_asked; /* when the writer asked for a seal; 0 = not asked */
    uint32_t seal_mark;  /* tm_sealed_count() then */
} wr = {.statm_fd = -1};

/* Fills in the header of the block whose payload (CLOCK record first) is
 * [start, start + raw), compressing it on the writer thread; iov[0..1]
 * are the bytes to write. */
static void frame_block(tm_block_header *h, uint32_t seq, const uint8_t *start, uint32_t raw,
                        int compress, struct iovec *iov)
{
    const uint8_t *stored = start;
    uint32_t stored_len = raw;
    uint16_t codec = TM_CODEC_RAW;
    if (compress && compress_here && zctx && ZSTD_compressBound(raw) <= zcap) {
        size_t z = ZSTD_compressCCtx(zctx, zbuf, zcap, start, raw, ZSTD_LEVEL);
        if (!ZSTD_isError(z) && z < raw) {
            stored = zbuf;
            stored_len = (uint32_t)z;
            codec = TM_CODEC_ZSTD;
        }
    }
    *h = (tm_block_header){
        .magic = TM_BLOCK_MAGIC,
        .type = TM_BLOCK_RECORDS,
        .codec = codec,
        .seq = seq,
        .stored_len = stored_len,
        .raw_len = raw,
        .checksum = tm_crc32c(0, stored, stored_len),
    };
    iov[0] = (struct iovec){h, sizeof *h};
    iov[1] = (struct iovec){(void *)stored, stored_len};
}

/* The CLOCK record goes in the room reserved before the payload, so the
 * reader sees the tick->ns pair taken after every event of the block.
 * Returns where the block starts. */
static uint8_t *put_clock(uint8_t *payload)
{
    uint8_t clock[1 + 2 * 10];
    uint8_t *p = clock;
    *p++ = TM_OP_CLOCK;
    p = tm_put_u(p, tm_ticks());
    p = tm_put_u(p, tm_mono_ns());
    size_t clen = (size_t)(p - clock);
    memcpy(payload - clen, clock, clen);
    return payload - clen;
}

/* Writing failed (the sink said so): the block in its place is END with
 * TM_END_WRITE_FAILED and the errno, when it still fits. */
static void fail_block(uint32_t seq, int err, off_t size)
{
    uint8_t buf[CLOCK_ROOM + 32];
    uint8_t *p = buf + CLOCK_ROOM, *start = put_clock(p);
    *p++ = TM_OP_END;
    p = tm_put_u(p, TM_END_WRITE_FAILED);
    p = tm_put_u(p, (uint64_t)err);
    tm_block_header h;
    struct iovec iov[2];
    frame_block(&h, seq, start, (uint32_t)(p - start), 0, iov);
    tm_sink_fail(err, size, iov, 2);
}

static int write_block(uint32_t seq, uint8_t *payload, uint32_t len)
{
    uint8_t *start = put_clock(payload);
    tm_block_header h;
    struct iovec iov[2];
    frame_block(&h, seq, start, (uint32_t)(payload - start) + len, 1, iov);
    off_t size;
    int rc = tm_sink_writev(iov, 2, &size);
    if (rc < 0)
        fail_block(seq, -rc, size);
    return rc < 0 ? rc : 0;
}

TM_HIDDEN int tm_writer_init(void)
{
    if (!enc_spare)
        enc_spare = tm_pages(ENC_BYTES);
    return enc_spare ? 0 : -ENOMEM;
}

/* Blocks go to the file in sequence order, though several threads may
 * encode at once (a thread waiting for a slot helps a writer that fell
 * behind): the reader reorders only within a few blocks.  Bounded, for a
 * predecessor that died mid-write. */
#define TURN_WAIT_NS 2000000000ull
static void wait_turn(const uint32_t *turn, uint32_t seq)
{
    uint64_t deadline = 0;
    for (unsigned i = 0; __atomic_load_n(turn, __ATOMIC_ACQUIRE) != seq; i++) {
        if (i < 256) {
            __builtin_ia32_pause();
            continue;
        }
        uint64_t now = tm_mono_ns();
        if (!deadline)
            deadline = now + TURN_WAIT_NS;
        else if (now > deadline)
            return;
        sched_yield();
    }
}

/* Moves *turn past seq, never back: a writer that gave up waiting may
 * finish after its successor. */
static void pass_turn(uint32_t *turn, uint32_t seq)
{
    uint32_t cur = __atomic_load_n(turn, __ATOMIC_ACQUIRE);
    while (cur <= seq &&
           !__atomic_compare_exchange_n(turn, &cur, seq + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
}

TM_HIDDEN int tm_write_chunk(uint32_t seq, const uint64_t *words, uint32_t n,
                             uint64_t start_tick, uint32_t *turn)
{
    uint8_t *buf = enc_own;
    int spare = !buf, rc = -ENOMEM;
    if (spare) {
        /* Bounded: a thread that crashed while encoding must not hang in
         * its own signal handler. */
        long i = 0;
        while (__atomic_exchange_n(&enc_spare_lock, 1, __ATOMIC_ACQUIRE) && ++i <= 100000000)
            ;
        if (i > 100000000) {
            spare = 0; /* not ours to release */
            rc = -EDEADLK;
        } else {
            buf = enc_spare;
        }
    }
    uint8_t *payload = buf ? buf + CLOCK_ROOM : NULL;
    uint8_t *end = payload ? tm_encode_chunk(words, words + n, start_tick, payload) : NULL;
    /* Every chunk takes its turn, written or not, so the next one never
     * waits for it. */
    wait_turn(turn, seq);
    if (end)
        rc = write_block(seq, payload, (uint32_t)(end - payload));
    else if (payload)
        rc = -EINVAL;
    pass_turn(turn, seq);
    if (spare)
        __atomic_store_n(&enc_spare_lock, 0, __ATOMIC_RELEASE);
    return rc;
}

static int open_statm(void);

static uint64_t read_rss(void)
{
    /* The program may have closed or taken the descriptor's number (as the
     * trace's, sink.c): it is neither read nor closed then. */
    struct stat st;
    if (fstat(wr.statm_fd, &st) != 0 || st.st_dev != wr.statm_dev || st.st_ino != wr.statm_ino)
        wr.statm_fd = open_statm();
    if (wr.statm_fd < 0)
        return 0;
    char buf[128];
    ssize_t n = pread(wr.statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* statm: size resident shared ... (pages) */
    const char *p = buf;
    while (*p && *p != ' ')
        p++;
    uint64_t pages = 0;
    while (*p == ' ')
        p++;
    while (*p >= '0' && *p <= '9')
        pages = pages * 10 + (uint64_t)(*p++ - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Periodic records go through the recorder's mail (recorder.c), so the
 * program's threads are not stopped for them; the writer takes the lock
 * only when nobody recorded for a while. */
#define MAIL_WAIT_NS 5000000ull

/* Returns when the next sample is due. */
static uint64_t sample_rss(uint64_t now, uint64_t rss_ns)
{
    uint64_t bytes = read_rss();
    if (tm_post_rss(bytes))
        return now + rss_ns;
    /* The previous sample is still there after a whole interval: nobody
     * records now, so the lock is free for the asking. */
    if (!tm_take_back_rss())
        return now + (tm_post_rss(bytes) ? rss_ns : RETRY_NS); /* taken meanwhile */
    return now + (tm_try_record_rss(bytes) ? rss_ns : RETRY_NS);
}

/* Asks for the chunk being filled to be sealed; done once any chunk was
 * sealed after asking.  Returns when to look again. */
static uint64_t flush_partial(uint64_t now)
{
    if (!wr.seal_asked) {
        wr.seal_mark = tm_sealed_count();
        wr.seal_asked = now;
        tm_post_seal(1);
        return now + CLOCK_REFRESH_MS * 1000000ull;
    }
    if (tm_sealed_count() == wr.seal_mark) {
        /* Woken early (chunks piled up): look again when the wait is over,
         * not every millisecond in between. */
        if (now - wr.seal_asked < MAIL_WAIT_NS)
            return wr.seal_asked + MAIL_WAIT_NS;
        if (!tm_try_seal_current())
            return now + RETRY_NS;
    }
    tm_post_seal(0);
    wr.seal_asked = 0;
    return now + FLUSH_MS * 1000000ull;
}

static void *writer_main(void *arg)
{
    tm_self.busy = TM_BUSY_TRACER; /* nothing this thread does is traced */
    is_writer = 1;
    tm_lock_exempt_self();
    enc_own = tm_pages(ENC_BYTES);
    zcap = ZSTD_compressBound(TM_BLOCK_MAX_RAW);
    zbuf = tm_pages(zcap);
    zctx = ZSTD_createCCtx();
    compress_here = zbuf && zctx;
    uint64_t next_rss = 0, next_flush = tm_mono_ns() + FLUSH_MS * 1000000ull, last_poke = 0;
    wr.seal_asked = 0;
    uint64_t rss_ns = (uint64_t)tm_cfg.rss_interval_ms * 1000000ull;
    for (;;) {
        uint32_t seen = __atomic_load_n(&wr.wake_word, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&wr.stop, __ATOMIC_ACQUIRE))
            break;
        uint64_t now = tm_mono_ns();
        /* A busy lock means a thread waits for us: write first, retry
         * soon. */
        if (rss_ns && wr.statm_fd >= 0 && now >= next_rss)
            next_rss = sample_rss(now, rss_ns);
        if (now >= next_flush)
            next_flush = flush_partial(now);
        /* After the mail: a recording thread looks at it when the clock
         * moves.  At most every POKE_NS: while chunks come the thread
         * looks for them more often than that, and every poke sends the
         * next event down the recorder's full path. */
        if (now - last_poke >= POKE_NS || now < last_poke) {
            tm_clock_refresh();
            tm_recorder_poke();
            last_poke = now;
        }
        int wrote = tm_write_sealed() > 0;
        now = tm_mono_ns();
        uint64_t until = now + (wrote ? BUSY_POLL_NS : CLOCK_REFRESH_MS * 1000000ull);
        if (next_flush < until)
            until = next_flush;
        if (rss_ns && next_rss < until)
            until = next_rss;
        /* Said before the last look for chunks: a producer that sealed
         * one after it sees waiting set (tm_writer_wake), or the futex
         * word changed since `seen`. */
        __atomic_store_n(&wr.waiting, 1, __ATOMIC_SEQ_CST);
        if (until > now && !tm_has_sealed()) {
            uint64_t d = until - now;
            struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
            syscall(SYS_futex, &wr.wake_word, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
        }
        __atomic_store_n(&wr.waiting, 0, __ATOMIC_RELAXED);
    }
    tm_write_sealed();
    compress_here = 0;
    ZSTD_freeCCtx(zctx);
    zctx = NULL;
    if (zbuf)
        tm_pages_free(zbuf, zcap);
    zbuf = NULL;
    if (enc_own)
        tm_pages_free(enc_own, ENC_BYTES);
    enc_own = NULL;
    return NULL;
}

/* /proc/self/statm on a high descriptor, or -1. */
static int open_statm(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* Keep low descriptor numbers for the program: a low one could be the
     * one it may not open (RLIMIT_NOFILE). */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    close(fd);
    if (high >= 0) {
        struct stat st;
        fstat(high, &st);
        wr.statm_dev = st.st_dev;
        wr.statm_ino = st.st_ino;
    } else {
        tm_diag("no high descriptor for /proc/self/statm (RLIMIT_NOFILE?): no RSS samples",
                NULL, NULL);
    }
    return high;
}

TM_HIDDEN int tm_writer_start(void)
{
    if (tm_cfg.rss_interval_ms > 0 && wr.statm_fd < 0)
        wr.statm_fd = open_statm();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread inherits the mask */
    __atomic_store_n(&wr.stop, 0, __ATOMIC_RELEASE);
    int rc = pthread_create(&wr.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    pthread_setname_np(wr.thread, "tidemark");
    __atomic_store_n(&wr.running, 1, __ATOMIC_RELEASE);
    return 0;
}

TM_HIDDEN int tm_on_writer_thread(void)
{
    return is_writer;
}

TM_HIDDEN int tm_writer_running(void)
{
    return __atomic_load_n(&wr.running, __ATOMIC_ACQUIRE);
}

/* A system call only when the thread may be waiting: a busy writer sees
 * the new chunks on its own. */
TM_HIDDEN void tm_writer_wake(void)
{
    __atomic_add_fetch(&wr.wake_word, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&wr.running, __ATOMIC_RELAXED) &&
        __atomic_load_n(&wr.waiting, __ATOMIC_SEQ_CST))
        syscall(SYS_futex, &wr.wake_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

TM_HIDDEN void tm_writer_stop(void)
{
    if (!tm_writer_running())
        return;
    __atomic_store_n(&wr.stop, 1, __ATOMIC_RELEASE);
    tm_writer_wake();
    pthread_join(wr.thread, NULL);
    __atomic_store_n(&wr.running, 0, __ATOMIC_RELEASE);
}

TM_HIDDEN void tm_writer_forget(void)
{
    __atomic_store_n(&wr.running, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&wr.waiting, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&wr.stop, 0, __ATOMIC_RELEASE);
}

/* One RSS reading now, from any thread (the start and the end of the
 * trace, so that a run shorter than one interval has its samples too):
 * its own descriptor, closed at once, not the writer's. 0 when unreadable. */
TM_HIDDEN uint64_t tm_rss_once(void)
{
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *p = buf; /* statm: size resident shared ... (pages) */
    while (*p && *p != ' ')
        p++;
    while (*p == ' ')
        p++;
    uint64_t pages = 0;
    while (*p >= '0' && *p <= '9')
        pages = pages * 10 + (uint64_t)(*p++ - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}
