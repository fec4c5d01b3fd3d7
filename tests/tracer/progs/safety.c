/* safety.c — the tracer never hangs its host and loses nothing
 * (host_safety.py).
 *
 *   safety _exit | exit
 *       signal(SIGUSR1, h) with h calling _exit(3) (or exit(3)); a second
 *       thread loops free(malloc(40)); after it ran 20000 pairs, main
 *       pthread_kills it.  Exit status 3 every time.
 *   safety sigalloc
 *       a 10 kHz SIGALRM handler does malloc(777) + free for about 1 s
 *       while main loops malloc(40) + free.  At the end writes
 *       "main M handler_mallocs A handler_frees F\n" to stdout.
 *   safety kill FILE
 *       loops malloc(16 + i % 512) + free; after every pair the number of
 *       pairs done goes into FILE (mapped shared, so it survives SIGKILL):
 *       (word 0), word 1 holds 1 once 100000 pairs are done (the handshake),
 *       word 2 the pid.  Runs until killed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>

#include "prog_util.h"

static volatile int pairs_done;
static int use_exit;

static void on_usr1(int sig)
{
    (void)sig;
    if (use_exit)
        exit(3);
    _exit(3);
}

static void *looper(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = malloc(40);
        sink = p;
        free(p);
        __atomic_add_fetch(&pairs_done, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int hang_mode(int with_exit)
{
    use_exit = with_exit;
    signal(SIGUSR1, on_usr1);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, looper, NULL) == 0);
    while (__atomic_load_n(&pairs_done, __ATOMIC_RELAXED) < 20000)
        sched_yield();
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    return 1; /* not reached: the handler ends the process */
}

static volatile unsigned long h_mallocs, h_frees;

static void on_alrm(int sig)
{
    (void)sig;
    void *p = malloc(777);
    if (p)
        h_mallocs++;
    sink = p;
    free(p);
    h_frees++;
}

static void put_num(char **p, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (n)
        *(*p)++ = tmp[--n];
}

static int sigalloc_mode(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long m = 0;
    for (;;) {
        for (int i = 0; i < 1000; i++) {
            void *p = malloc(40);
            sink = p;
            free(p);
        }
        m += 1000;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > 1000000000L &&
            h_mallocs >= 1000)
            break;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    char buf[128], *p = buf;
    memcpy(p, "main ", 5), p += 5;
    put_num(&p, m);
    memcpy(p, " handler_mallocs ", 17), p += 17;
    put_num(&p, h_mallocs);
    memcpy(p, " handler_frees ", 15), p += 15;
    put_num(&p, h_frees);
    *p++ = '\n';
    ssize_t rc = write(1, buf, (size_t)(p - buf));
    (void)rc;
    return 0;
}

static int kill_mode(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 4096) == 0);
    volatile uint64_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(w != MAP_FAILED);
    w[2] = (uint64_t)getpid();
    for (uint64_t i = 0;; i++) {
        void *p = malloc(16 + i % 512);
        sink = p;
        free(p);
        w[0] = i + 1;
        if (i + 1 == 100000)
            w[1] = 1;
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "_exit") == 0)
        return hang_mode(0);
    if (argc >= 2 && strcmp(argv[1], "exit") == 0)
        return hang_mode(1);
    if (argc >= 2 && strcmp(argv[1], "sigalloc") == 0)
        return sigalloc_mode();
    if (argc >= 3 && strcmp(argv[1], "kill") == 0)
        return kill_mode(argv[2]);
    say("usage: safety _exit|exit|sigalloc|kill FILE\n");
    return 2;
}
