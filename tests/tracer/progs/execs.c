/* execs.c — a forked child that execs, as a wrapper (timeout, a shell)
 * does.  The parent leaks 2 x 100 bytes before the fork and 1 x 300 after.
 * The child leaks 3 x 200 and 1 x 10 around an exec that cannot start (no
 * such file: the trace goes on), then tries an exec that the kernel
 * refuses (a file without a format, ENOEXEC) and leaks 1 x 50 after it,
 * then execs this program again, which leaks 4 x 400 and exits 6.  The
 * parent exits with the child's status plus 10.
 *
 * With --follow-fork and pattern t.%p.trace: t.PARENT.trace (3 blocks,
 * 500 bytes, end exit); t.CHILD.trace (4 blocks, 610 bytes, end exec);
 * t.CHILD.trace.2 (1 block, 50 bytes, end exec); t.CHILD.trace.3 (4
 * blocks, 1600 bytes, end exit).  Without it, only the parent's.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "prog_util.h"

NOINLINE static void *leak(size_t n)
{
    return malloc(n);
}

static void *keep[16];

static void second_image(void)
{
    for (int i = 0; i < 4; i++)
        keep[i] = leak(400);
    sink = keep;
    exit(6);
}

static void child(void)
{
    for (int i = 0; i < 3; i++)
        keep[2 + i] = leak(200);
    char *const argv[] = {"execs", "second", NULL};
    CHECK(execv("/nonexistent/execs", argv) < 0 && errno == ENOENT);
    keep[5] = leak(10);

    /* Executable, but in no format the kernel knows. */
    int fd = open("not_a_program", O_WRONLY | O_CREAT | O_TRUNC, 0700);
    CHECK(fd >= 0);
    CHECK(write(fd, "\x01\x02\x03\x04", 4) == 4);
    CHECK(close(fd) == 0);
    CHECK(execv("./not_a_program", argv) < 0 && errno == ENOEXEC);
    keep[6] = leak(50);
    sink = keep;

    execl("/proc/self/exe", "execs", "second", (char *)NULL);
    say("execs: exec failed\n");
    _exit(99);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "second") == 0)
        second_image();
    keep[0] = leak(100);
    keep[1] = leak(100);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        child();
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    keep[7] = leak(300);
    sink = keep;
    return WEXITSTATUS(status) + 10;
}
