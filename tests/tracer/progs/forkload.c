/* forkload.c LIB — forks while other threads keep the tracer's shared
 * state busy, so that another thread is often inside it when a fork
 * happens: one thread loads and unloads LIB (the module map, at dlclose
 * and at the first stack walk after a dlopen), another starts and joins
 * short-lived threads that allocate (the spare per-thread states, taken at
 * a thread's first allocation and given back at its exit).
 *
 * Each child starts one thread, which leaks 48 bytes in region "child",
 * then allocates 32 bytes, frees them and exits 0 at once.  With
 * --follow-fork the child writes a trace of its own and must not wait for
 * a lock the parent's other threads held (they do not exist in the
 * child).  A child that is not done within 10 s counts as hung: the
 * parent exits 91.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "prog_util.h"
#include "tidemark.h"

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

static void *briefly(void *arg)
{
    sink = malloc(16);
    free(sink);
    return arg;
}

static void *thread_churn(void *arg)
{
    (void)arg;
    while (!stop) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, briefly, NULL) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    }
    return NULL;
}

static void *child_thread(void *arg)
{
    tidemark_region_begin("child");
    sink = malloc(48);
    tidemark_region_end();
    return arg;
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
    pthread_t loader, starter;
    CHECK(pthread_create(&loader, NULL, churn, NULL) == 0);
    CHECK(pthread_create(&starter, NULL, thread_churn, NULL) == 0);
    int hung = 0;
    for (int i = 0; i < FORKS && !hung; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            pthread_t t;
            CHECK(pthread_create(&t, NULL, child_thread, NULL) == 0);
            CHECK(pthread_join(t, NULL) == 0);
            sink = malloc(32);
            free(sink);
            _exit(0);
        }
        hung = !reap(pid);
        struct timespec pause = {0, 2000000};
        nanosleep(&pause, NULL);
    }
    stop = 1;
    CHECK(pthread_join(loader, NULL) == 0);
    CHECK(pthread_join(starter, NULL) == 0);
    return hung ? 91 : 0;
}
