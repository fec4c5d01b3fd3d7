/* file_ops.c MODE [ARGS] — what a program does to the descriptors and the
 * disk under the tracer's trace file.
 *
 *   dup2 PATH N        opens PATH (its own file) onto descriptor 900, the
 *                      one the tracer's trace file has, writes "MINE\n"
 *                      through it, then does the churn below
 *   close_range N      closes every descriptor from 3 up, then the churn
 *   reopen PATH N      closes every descriptor from 3 up, opens PATH and
 *                      moves it to 900 (the first free one from 900: the
 *                      number the trace had), writes "MINE\n", then the churn
 *   churn N            the churn alone
 *   kill N             N malloc(32)/free pairs as fast as it can, then
 *                      prints "N\n" on stdout and waits to be killed
 *
 * The churn: N malloc/free pairs of 16..1039 bytes, then 3 leaked blocks
 * of 100 bytes; exit 0.  Every descriptor the program opens is closed
 * again before it exits.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "prog_util.h"

#define PROG_FD 900

NOINLINE static void leak_three(void)
{
    static void *keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = malloc(100);
    sink = keep;
}

NOINLINE static void churn(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = malloc(16 + (size_t)(i * 7919 % 1024));
        sink = p;
        free(p);
    }
    leak_three();
}

static void close_from_3(void)
{
    CHECK(syscall(SYS_close_range, 3u, ~0u, 0u) == 0);
}

static int own_file_at_900(const char *path, int dup2_onto)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    int at = dup2_onto ? dup2(fd, PROG_FD) : fcntl(fd, F_DUPFD, PROG_FD);
    CHECK(at == PROG_FD);
    close(fd);
    CHECK(write(at, "MINE\n", 5) == 5);
    return at;
}

static long count(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    CHECK(*s && !*end && n >= 0);
    return n;
}

int main(int argc, char **argv)
{
    CHECK(argc >= 3);
    const char *m = argv[1];
    if (strcmp(m, "dup2") == 0 || strcmp(m, "reopen") == 0) {
        CHECK(argc == 4);
        if (m[0] == 'r')
            close_from_3();
        int fd = own_file_at_900(argv[2], m[0] == 'd');
        churn(count(argv[3]));
        CHECK(close(fd) == 0);
        return 0;
    }
    if (strcmp(m, "close_range") == 0) {
        close_from_3();
        churn(count(argv[2]));
        return 0;
    }
    if (strcmp(m, "churn") == 0) {
        churn(count(argv[2]));
        return 0;
    }
    if (strcmp(m, "kill") == 0) {
        long n = count(argv[2]);
        for (long i = 0; i < n; i++) {
            void *p = malloc(32);
            sink = p;
            free(p);
        }
        char line[24];
        char *e = line + sizeof line;
        *--e = '\n';
        do
            *--e = (char)('0' + n % 10);
        while ((n /= 10) > 0);
        CHECK(write(1, e, (size_t)(line + sizeof line - e)) > 0);
        for (;;)
            pause();
    }
    say("unknown mode\n");
    return 2;
}
