/* host_files.c — the program's files next to the trace's, and write
 * failures (host_files.py).  No stdio: its buffers would be allocations.
 *
 *   host_files dup2 FILE TRACE   opens FILE, dup2s it onto the trace's
 *                                descriptor (found by TRACE's path), writes
 *                                "MINE\n" there, then allocates
 *   host_files close_range N     close_range(3, ~0U, 0), opens files
 *                                f0..f(N-1) and writes "file I\n" to each,
 *                                allocates, then writes "more I\n" to each
 *   host_files fill              allocates and frees a lot, sizes and
 *                                lifetimes varied (the trace grows fast)
 *   host_files exec_fail FILE    keeps 3 x 100 bytes, execs FILE (no format:
 *                                ENOEXEC), keeps 2 x 50 bytes
 *   host_files plain             keeps 3 x 100 bytes
 *
 * Every mode keeps KEEP blocks of 1000 bytes from keep_blocks (but
 * exec_fail and plain, see above), prints "done\n" on stdout and exits 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "prog_util.h"

#define KEEP 300

static void *volatile kept[KEEP];

NOINLINE static void keep_blocks(void)
{
    for (int i = 0; i < KEEP; i++)
        kept[i] = malloc(1000);
}

/* n malloc/free pairs, sizes and order varied (an LCG): the records do not
 * compress away. */
NOINLINE static void churn(long n)
{
    void *slot[64] = {0};
    uint64_t x = 12345;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)(x >> 58);
        free(slot[k]);
        slot[k] = malloc(1 + (size_t)(x >> 40) % 4000);
    }
    for (int k = 0; k < 64; k++)
        free(slot[k]);
}

static void put(int fd, const char *s)
{
    CHECK(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

static void put_num(int fd, const char *pre, long n)
{
    char buf[64];
    int len = snprintf(buf, sizeof buf, "%s%ld\n", pre, n);
    CHECK(write(fd, buf, (size_t)len) == len);
}

static int fd_of(const char *path)
{
    for (int fd = 3; fd < 4096; fd++) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        if (strcmp(target, path) == 0)
            return fd;
    }
    return -1;
}

static int do_dup2(const char *file, const char *trace)
{
    int tfd = fd_of(trace);
    CHECK(tfd >= 3);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(dup2(fd, tfd) == tfd);
    close(fd);
    put(tfd, "MINE\n");
    keep_blocks();
    churn(300000);
    close(tfd);
    return 0;
}

static int do_close_range(int n)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < (rlim_t)n + 64 && rl.rlim_max >= (rlim_t)n + 64) {
        rl.rlim_cur = (rlim_t)n + 64;
        CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    }
    int *fds = calloc((size_t)n, sizeof *fds);
    CHECK(fds);
    CHECK(syscall(SYS_close_range, 3u, ~0u, 0u) == 0);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", i);
        fds[i] = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fds[i] >= 0);
        put_num(fds[i], "file ", i);
    }
    keep_blocks();
    churn(300000);
    for (int i = 0; i < n; i++) {
        put_num(fds[i], "more ", i);
        close(fds[i]);
    }
    free(fds);
    return 0;
}

static int do_exec_fail(const char *file)
{
    for (int i = 0; i < 3; i++)
        kept[i] = malloc(100);
    char *argv[] = {(char *)file, NULL};
    execv(file, argv);
    CHECK(errno == ENOEXEC);
    for (int i = 3; i < 5; i++)
        kept[i] = malloc(50);
    return 0;
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "";
    int rc = 2;
    if (!strcmp(m, "dup2") && argc == 4)
        rc = do_dup2(argv[2], argv[3]);
    else if (!strcmp(m, "close_range") && argc == 3)
        rc = do_close_range(atoi(argv[2]));
    else if (!strcmp(m, "fill")) {
        keep_blocks();
        churn(2000000);
        rc = 0;
    } else if (!strcmp(m, "exec_fail") && argc == 3)
        rc = do_exec_fail(argv[2]);
    else if (!strcmp(m, "plain")) {
        for (int i = 0; i < 3; i++)
            kept[i] = malloc(100);
        rc = 0;
    }
    if (rc == 0)
        put(1, "done\n");
    return rc;
}
