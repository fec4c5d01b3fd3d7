/* forkload.c LIB — forks while another thread keeps loading and unloading
 * LIB, so that the tracer is often writing the module map (dlclose, and
 * the first stack walk after a dlopen) when a fork happens.  Each child
 * allocates 32 bytes, frees them and exits 0 at once; with --follow-fork
 * it first writes the
 * module map into a trace of its own, which must not wait for the parent's
 * other thread (it does not exist in the child).  A child that is not
 * done within 10 s counts as hung: the parent exits 91.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "prog_util.h"

#define FORKS 24

static const char *lib;
static volatile int stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!stop) {
        void *h = dlopen(lib, RTLD_NOW);
        CHECK(h);
        void *(*make)(size_t) = (void *(*)(size_t))dlsym(h, "tm_leaky_make");
        CHECK(make);
        free(make(64)); /* a stack walk through the library just loaded */
        CHECK(dlclose(h) == 0);
    }
    return NULL;
}

/* 1 when the child exited 0 within 10 s. */
static int reap(pid_t pid)
{
    for (int i = 0; i < 10000; i++) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        CHECK(r >= 0);
        if (r == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    lib = argv[1];
    pthread_t t;
    CHECK(pthread_create(&t, NULL, churn, NULL) == 0);
    int hung = 0;
    for (int i = 0; i < FORKS && !hung; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            sink = malloc(32);
            free(sink);
            _exit(0);
        }
        hung = !reap(pid);
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
    stop = 1;
    CHECK(pthread_join(t, NULL) == 0);
    return hung ? 91 : 0;
}
