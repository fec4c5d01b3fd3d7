/* host_signals.c — what a program sees of its signal dispositions and
 * alternate stacks, and what happens when its signals come (host_signals.py).
 *
 *   host_signals view        prints every disposition query (exits 0)
 *   host_signals handler     its own SIGSEGV handler, then a NULL store
 *   host_signals resethand   SA_RESETHAND SIGTERM handler, raised twice
 *   host_signals ignore      SIGTERM ignored; waits for a line on stdin
 *   host_signals overflow    5000 blocks, then a stack overflow
 *   host_signals overflow_thread   the same in a second thread
 *   host_signals overflow_own      the same with the program's own
 *                                  alternate stack set
 *   host_signals overflow_own_off  the same in a thread that first records
 *                                  with its own alternate stack, then
 *                                  disables it
 *   host_signals threads     300 threads in turn, each allocating: the
 *                            mappings do not grow (exits 0)
 *
 * Blocks: KEEP_BLOCKS blocks of 16 + (i % 8) * 16 bytes (360,000 bytes in
 * all), never freed, from keep_blocks. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* siginterrupt, sigset and sigignore are what is looked at here. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Winfinite-recursion" /* recurse: on purpose */

#define KEEP_BLOCKS 5000

static void *volatile kept[KEEP_BLOCKS];
static void *volatile scratch;

/* malloc and free, kept by the compiler (a pair it sees it may drop) */
static void churn(size_t n)
{
    scratch = malloc(n);
    free(scratch);
}

__attribute__((noinline)) static void keep_blocks(void)
{
    for (int i = 0; i < KEEP_BLOCKS; i++)
        kept[i] = malloc(16 + (size_t)(i % 8) * 16);
}

static void say(const char *s)
{
    ssize_t n = write(1, s, strlen(s));
    (void)n;
}

static const char *kind(void *h)
{
    if (h == (void *)SIG_DFL)
        return "SIG_DFL";
    if (h == (void *)SIG_IGN)
        return "SIG_IGN";
    return "handler";
}

static void *restorer_seen;

static void show(const char *what, int sig, const struct sigaction *sa)
{
    uint64_t mask;
    memcpy(&mask, &sa->sa_mask, sizeof mask);
    const char *rest = "null";
    if (sa->sa_restorer) {
        if (!restorer_seen)
            restorer_seen = (void *)sa->sa_restorer;
        rest = (void *)sa->sa_restorer == restorer_seen ? "libc" : "other";
    }
    printf("%s %d %s flags=%#x mask=%#llx restorer=%s\n", what, sig, kind((void *)sa->sa_handler),
           (unsigned)sa->sa_flags, (unsigned long long)mask, rest);
}

static void query(const char *what, int sig)
{
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0) {
        printf("%s %d failed\n", what, sig);
        return;
    }
    show(what, sig, &sa);
}

static void show_altstack(const char *what)
{
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    if (sigaltstack(NULL, &ss) != 0) {
        printf("%s sigaltstack failed\n", what);
        return;
    }
    printf("%s altstack flags=%d sp=%s size=%zu\n", what, ss.ss_flags, ss.ss_sp ? "set" : "null",
           ss.ss_size);
}

static void on_term(int sig)
{
    (void)sig;
}

static void on_term_info(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
}

static int all_sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE,
                         SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD,
                         SIGXCPU, SIGXFSZ, SIGSYS, 34 /* SIGRTMIN */};

static int view(void)
{
    for (size_t i = 0; i < sizeof all_sigs / sizeof all_sigs[0]; i++)
        query("start", all_sigs[i]);
    show_altstack("start");

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sa.sa_flags = SA_RESTART | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaddset(&sa.sa_mask, SIGKILL); /* the kernel drops SIGKILL and SIGSTOP */
    memset(&old, 0x5a, sizeof old);
    sigaction(SIGTERM, &sa, &old);
    show("old", SIGTERM, &old);
    query("set", SIGTERM);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_term_info;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigaction(SIGSEGV, &sa, NULL);
    query("set", SIGSEGV);
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = 0;
    sigaction(SIGSEGV, &sa, &old);
    show("old", SIGSEGV, &old);
    query("reset", SIGSEGV);

    printf("signal %s\n", kind((void *)signal(SIGHUP, on_term)));
    query("signal", SIGHUP);
    printf("signal back %s\n", kind((void *)signal(SIGHUP, SIG_DFL)));
    query("signal back", SIGHUP);
    printf("siginterrupt %d\n", siginterrupt(SIGHUP, 1));
    query("siginterrupt", SIGHUP);
    printf("signal after siginterrupt %s\n", kind((void *)signal(SIGHUP, on_term)));
    query("signal after siginterrupt", SIGHUP);
    printf("sysv_signal %s\n", kind((void *)sysv_signal(SIGQUIT, on_term)));
    query("sysv_signal", SIGQUIT);
    printf("sigset %s\n", kind((void *)sigset(SIGXCPU, on_term)));
    query("sigset", SIGXCPU);
    printf("sigignore %d\n", sigignore(SIGBUS));
    query("sigignore", SIGBUS);
    printf("signal ign %s\n", kind((void *)signal(SIGBUS, SIG_DFL)));
    query("signal ign", SIGBUS);
    printf("signal err %s\n", signal(SIGTERM, SIG_ERR) == SIG_ERR ? "SIG_ERR" : "accepted");
    printf("sigaction bad %d\n", sigaction(0, NULL, &old));
    printf("signal usr1 %s\n", kind((void *)signal(SIGUSR1, on_term)));
    query("signal usr1", SIGUSR1);

    /* An alternate stack of its own, then none again. */
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt}, was;
    memset(&was, 0, sizeof was);
    printf("set altstack %d\n", sigaltstack(&ss, &was));
    printf("was altstack flags=%d sp=%s size=%zu\n", was.ss_flags, was.ss_sp ? "set" : "null",
           was.ss_size);
    stack_t got;
    sigaltstack(NULL, &got);
    printf("own altstack %s size=%zu flags=%d\n", got.ss_sp == alt ? "alt" : "other", got.ss_size,
           got.ss_flags);
    ss.ss_flags = SS_DISABLE;
    printf("disable altstack %d\n", sigaltstack(&ss, NULL));
    show_altstack("disabled");
    stack_t tiny = {.ss_sp = alt, .ss_size = 512};
    printf("tiny altstack %d\n", sigaltstack(&tiny, NULL));
    show_altstack("after tiny");
    churn(10); /* something to record */
    return 0;
}

/* Its own SIGSEGV handler: says so, puts the default back and returns, so
 * the store faults again and the process dies of SIGSEGV. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char line[64];
    int n = snprintf(line, sizeof line, "handled %d addr %s\n", sig,
                     si->si_addr == NULL ? "null" : "other");
    ssize_t w = write(1, line, (size_t)n);
    (void)w;
    signal(SIGSEGV, SIG_DFL);
}

static int handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    keep_blocks();
    *(volatile int *)(uintptr_t)0 = 1;
    return 3;
}

static volatile int terms;

static void on_term_count(int sig)
{
    (void)sig;
    terms++;
    say("term\n");
}

/* SA_RESETHAND: the first SIGTERM reaches the handler, the second kills. */
static int resethand(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term_count;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGTERM, &sa, NULL);
    keep_blocks();
    raise(SIGTERM);
    struct sigaction now;
    sigaction(SIGTERM, NULL, &now);
    printf("after one %s %d\n", kind((void *)now.sa_handler), terms);
    fflush(stdout);
    raise(SIGTERM);
    return 3;
}

static int ignore(void)
{
    signal(SIGTERM, SIG_IGN);
    keep_blocks();
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        return 4;
    struct sigaction now;
    sigaction(SIGTERM, NULL, &now);
    printf("survived %s\n", kind((void *)now.sa_handler));
    return 0;
}

__attribute__((noinline)) static int recurse(volatile char *up)
{
    volatile char pad[512];
    pad[0] = up ? up[0] : 1;
    return recurse(pad) + pad[1];
}

static void *overflow_main(void *arg)
{
    (void)arg;
    keep_blocks();
    say("recursing\n");
    recurse(NULL);
    return NULL;
}

static int overflow(int own_stack)
{
    if (own_stack) {
        static char alt[1 << 16];
        stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
        if (sigaltstack(&ss, NULL) != 0)
            return 5;
        show_altstack("own");
        fflush(stdout);
    }
    overflow_main(NULL);
    return 3;
}

/* A thread with its own alternate stack when it first records, which it
 * then disables: the hidden one takes over. */
static void *own_then_off(void *arg)
{
    (void)arg;
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    if (sigaltstack(&ss, NULL) != 0)
        return NULL;
    churn(8); /* the first record, with its own stack set */
    ss.ss_flags = SS_DISABLE;
    if (sigaltstack(&ss, NULL) != 0)
        return NULL;
    show_altstack("off");
    return overflow_main(NULL);
}

static int overflow_thread(int own_off)
{
    pthread_t t;
    churn(8); /* the main thread records first */
    if (pthread_create(&t, NULL, own_off ? own_then_off : overflow_main, NULL) != 0)
        return 5;
    pthread_join(t, NULL);
    return 3;
}

static void *one_thread(void *arg)
{
    churn(24);
    if (arg) {
        show_altstack("thread");
        stack_t k; /* the kernel's answer, past any interposition */
        syscall(SYS_sigaltstack, NULL, &k);
        printf("thread kernel altstack flags=%d size=%zu\n", k.ss_flags, k.ss_size);
    }
    return NULL;
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int threads(void)
{
    int after10 = 0;
    for (int i = 0; i < 300; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, one_thread, i == 0 ? "show" : NULL) != 0)
            return 5;
        pthread_join(t, NULL);
        if (i == 9)
            after10 = count_maps();
        fflush(stdout);
    }
    printf("maps grew %d\n", count_maps() - after10);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *m = argc > 1 ? argv[1] : "view";
    if (!strcmp(m, "view"))
        return view();
    if (!strcmp(m, "handler"))
        return handler();
    if (!strcmp(m, "resethand"))
        return resethand();
    if (!strcmp(m, "ignore"))
        return ignore();
    if (!strcmp(m, "overflow"))
        return overflow(0);
    if (!strcmp(m, "overflow_own"))
        return overflow(1);
    if (!strcmp(m, "overflow_thread"))
        return overflow_thread(0);
    if (!strcmp(m, "overflow_own_off"))
        return overflow_thread(1);
    if (!strcmp(m, "threads"))
        return threads();
    return 2;
}
