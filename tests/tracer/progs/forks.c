/* forks.c — the parent leaks 2 x 100 bytes before and 1 x 300 after the
 * fork; the child leaks 3 x 200 bytes and exits 5.  With --follow-fork the
 * child writes its own trace (3 blocks / 600 bytes); without, only the
 * parent's trace exists (3 blocks / 500 bytes).  The parent exits with the
 * child's status plus 10 so the test sees the child ran.
 */
#include <sys/wait.h>

#include "prog_util.h"

NOINLINE static void *leak(size_t n)
{
    return malloc(n);
}

int main(void)
{
    static void *keep[8];
    keep[0] = leak(100);
    keep[1] = leak(100);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 3; i++)
            keep[2 + i] = leak(200);
        sink = keep;
        exit(5);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    keep[5] = leak(300);
    sink = keep;
    return WEXITSTATUS(status) + 10;
}
