/* host_sig.c — an allocation in a signal handler, unwound through the
 * signal frame to the code it interrupted.
 *
 *   host_sig main|alt
 *
 * interrupted_here raises SIGUSR1; the handler (on the thread's stack, or
 * with "alt" on an alternate signal stack) leaks 77 bytes from sig_leak.
 * The leak's stack must read sig_leak, on_signal, ..., interrupted_here,
 * main.  Exits 0. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void *volatile leaked;

__attribute__((noinline)) static void sig_leak(void)
{
    leaked = malloc(77);
}

__attribute__((noinline)) static void on_signal(int sig)
{
    (void)sig;
    sig_leak();
}

__attribute__((noinline)) static void interrupted_here(void)
{
    raise(SIGUSR1);
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (argc > 1 && strcmp(argv[1], "alt") == 0) {
        static char alt[1 << 16];
        stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
        if (sigaltstack(&ss, NULL) != 0)
            return 2;
        sa.sa_flags = SA_ONSTACK;
    }
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 3;
    interrupted_here();
    return leaked ? 0 : 4;
}
