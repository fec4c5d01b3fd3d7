/* sink.c — the trace file: the one descriptor the tracer writes, checked
 * before every write, and what happens when writing fails.
 *
 * The descriptor is the program's to take: dup2 onto its number, or
 * close_range followed by the program's own opens, silently turn it into
 * the program's file.  So every write first compares the descriptor's
 * device and inode with the file's (fstat, about 0.3 us, once per block:
 * a block holds up to 64 KiB of records, or 100 ms of them).  When they
 * differ, or the descriptor is closed, the number is the program's: it is
 * neither written nor closed.  The file is opened again by its path
 * (O_APPEND, no symlink, and it must be the same inode), on a new high
 * close-on-exec descriptor, and the trace goes on there with nothing lost;
 * when that fails tracing of the file stops, with one line saying why.
 * Only a descriptor replaced between the check and the write (one system
 * call apart) could still receive a block.
 *
 * A write that fails (ENOSPC, EFBIG under RLIMIT_FSIZE, EIO) is said in one
 * line naming the cause when it happens.  The partly written block is cut
 * off again (ftruncate to the size checked just before), which frees room
 * on a full disk, and a small block with END (TM_END_WRITE_FAILED, the
 * errno) is written in its place when it fits: the reader then says why
 * the trace ends.  Later blocks are dropped; the program runs on.
 *
 * Blocks reach here in turn (writer.c: wait_turn), so one thread at a time
 * checks, reopens or fails the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tm_internal.h"

/* The tracer's descriptors start here, above what programs use. */
#define HIGH_FD 900
#define KSET_BYTES 8 /* the kernel's signal set */

static struct {
    int fd;
    dev_t dev;
    ino_t ino;
    int err;          /* atomic: errno that stopped the file, 0 = writing */
    char path[4096];  /* for reopening; empty = cannot be reopened */
} sink = {.fd = -1};

/* One diagnostic line from pieces, NULL-terminated (tm_diag takes three). */
static void say(const char *first, ...)
{
    char line[1024];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        for (; *s && n < sizeof line - 1; s++)
            line[n++] = *s;
    va_end(ap);
    line[n] = 0;
    tm_diag(line, NULL, NULL);
}

TM_HIDDEN void tm_sink_set_path(const char *path)
{
    size_t n = path ? tm_strlen(path) : 0;
    if (n >= sizeof sink.path)
        n = 0;
    memcpy(sink.path, path ? path : "", n);
    sink.path[n] = 0;
}

TM_HIDDEN int tm_sink_attach(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    sink.fd = fd;
    sink.dev = st.st_dev;
    sink.ino = st.st_ino;
    __atomic_store_n(&sink.err, 0, __ATOMIC_RELEASE);
    return 0;
}

TM_HIDDEN int tm_sink_fd(void)
{
    return sink.fd;
}

TM_HIDDEN int tm_sink_failed(void)
{
    return __atomic_load_n(&sink.err, __ATOMIC_ACQUIRE);
}

static int is_ours(int fd, struct stat *st)
{
    return fd >= 0 && fstat(fd, st) == 0 && st->st_dev == sink.dev && st->st_ino == sink.ino;
}

TM_HIDDEN void tm_sink_close(void)
{
    struct stat st;
    if (is_ours(sink.fd, &st))
        close(sink.fd);
    sink.fd = -1;
}

TM_HIDDEN void tm_sink_discard(int fd)
{
    struct stat st, named;
    if (fd >= 0 && fstat(fd, &st) == 0 && sink.path[0] && lstat(sink.path, &named) == 0 &&
        named.st_dev == st.st_dev && named.st_ino == st.st_ino)
        unlink(sink.path);
    if (fd >= 0 && fd != sink.fd)
        close(fd);
    tm_sink_close();
}

static void stop(int e)
{
    __atomic_store_n(&sink.err, e, __ATOMIC_RELEASE);
}

/* The descriptor is not the file any more: the same file again by its
 * path, on a new high descriptor, or -errno. */
static int reopen(struct stat *st)
{
    char was[24], now[24];
    tm_utoa((uint64_t)sink.fd, was);
    int e = ENOENT;
    if (sink.path[0]) {
        int fd = open(sink.path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        e = errno;
        if (fd >= 0 && (fstat(fd, st) != 0 || st->st_dev != sink.dev || st->st_ino != sink.ino))
            e = ESTALE; /* another file under the same name */
        else if (fd >= 0) {
            int high = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
            e = errno;
            close(fd);
            fd = -1;
            if (high >= 0) {
                tm_utoa((uint64_t)high, now);
                say("the program closed or took over the trace's descriptor ", was,
                    "; the trace goes on in ", sink.path, " (descriptor ", now, ")", NULL);
                sink.fd = high;
                return 0;
            }
        }
        if (fd >= 0)
            close(fd);
    }
    say("the program closed or took over the trace's descriptor ", was, " and ",
        sink.path[0] ? sink.path : "the trace", " cannot be opened again (",
        e == ESTALE ? "another file has its name now" : tm_strerror(e), "): tracing stops", NULL);
    return -e;
}

/* A write past RLIMIT_FSIZE fails with EFBIG and raises SIGXFSZ at the
 * writing thread, whose default action kills the process: the program
 * would die of the trace's size (before main, when the header is the
 * write).  So SIGXFSZ is blocked around the tracer's writes, and one the
 * write raised is taken back before it is unblocked. */
static void xfsz_block(sigset_t *was)
{
    sigset_t x;
    sigemptyset(&x);
    sigaddset(&x, SIGXFSZ);
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, &x, was, KSET_BYTES);
}

static void xfsz_unblock(const sigset_t *was, int raised)
{
    if (raised) {
        sigset_t x;
        sigemptyset(&x);
        sigaddset(&x, SIGXFSZ);
        struct timespec now = {0, 0};
        syscall(SYS_rt_sigtimedwait, &x, NULL, &now, KSET_BYTES);
    }
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, was, NULL, KSET_BYTES);
}

static int write_all(struct iovec *iov, int cnt)
{
    size_t left = 0;
    for (int i = 0; i < cnt; i++)
        left += iov[i].iov_len;
    sigset_t was;
    xfsz_block(&was);
    while (left) {
        ssize_t n = writev(sink.fd, iov, cnt);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            xfsz_unblock(&was, e == EFBIG);
            return -e;
        }
        left -= (size_t)n;
        for (int i = 0; i < cnt && n > 0; i++) {
            size_t take = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            n -= (ssize_t)take;
        }
    }
    xfsz_unblock(&was, 0);
    return 0;
}

TM_HIDDEN int tm_sink_writev(struct iovec *iov, int cnt, off_t *size)
{
    if (tm_sink_failed())
        return 1;
    struct stat st;
    if (!is_ours(sink.fd, &st)) {
        int rc = reopen(&st);
        if (rc < 0) {
            stop(-rc);
            return 1;
        }
    }
    *size = st.st_size;
    return write_all(iov, cnt);
}

TM_HIDDEN void tm_sink_fail(int e, off_t size, struct iovec *end_iov, int cnt)
{
    say("writing the trace", sink.path[0] ? " " : "", sink.path, " failed: ", tm_strerror(e),
        "; the trace ends here", NULL);
    stop(e);
    /* Cut the partial block off and end with a record saying why. */
    if (ftruncate(sink.fd, size) != 0)
        return;
    if (end_iov && write_all(end_iov, cnt) < 0) {
        int rc = ftruncate(sink.fd, size);
        (void)rc;
    }
}
