/* end_host.c — how a process ends, and who ends its trace.
 *
 *   end_host lib      linked with end_lib.so (constructor malloc(500),
 *                     destructor free); an atexit handler frees a 300-byte
 *                     block; 10 malloc(40) leak.  Exits 0.
 *   end_host vfork    a vfork child fails to exec /nonexistent and _exits
 *                     127; then the parent makes 1000 malloc(24), frees 900
 *                     and exits 0: the child's _exit must not end the trace.
 *   end_host count    1000 malloc(24), 900 freed (for first_malloc.so).
 * In every mode end_lib.so adds its malloc(500) and the free at the end. */
#include <sys/wait.h>

#include "prog_util.h"

extern void end_lib_linked(void);

static void *volatile at_exit_block;

static void free_at_exit(void)
{
    free(at_exit_block);
}

NOINLINE static void thousand(void)
{
    for (int i = 0; i < 1000; i++) {
        void *volatile p = malloc(24);
        if (i % 10)
            free(p);
        else
            sink = p;
    }
}

static void vfork_child_fails(void)
{
    char *argv[] = {"/nonexistent", NULL};
    pid_t pid = vfork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 127);
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    if (!strcmp(argv[1], "lib")) {
        end_lib_linked();
        at_exit_block = malloc(300);
        CHECK(atexit(free_at_exit) == 0);
        for (int i = 0; i < 10; i++)
            sink = malloc(40);
        return 0;
    }
    if (!strcmp(argv[1], "vfork")) {
        vfork_child_fails();
        thousand();
        return 0;
    }
    if (!strcmp(argv[1], "count")) {
        thousand();
        return 0;
    }
    return 2;
}
