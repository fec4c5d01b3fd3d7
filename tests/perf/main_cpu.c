/* main_cpu.c — libtm_maincpu.so, for tracer_bench.py: preloaded into every
 * measured run, it writes the CPU seconds (user + system) of the thread
 * that runs the process's destructors, the main thread at exit(), as one
 * line appended to the file TM_BENCH_CPU_OUT names: every process of a run
 * adds its own (under `tidemark run`, the CLI's is the smallest).
 *
 * The tracer's own thread shows in wall time only where it competes for a
 * core; the main thread's CPU time is the program's own work plus the
 * hooks', and varies less from run to run than wall time on a shared
 * machine.  Nothing is written when the variable is unset.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

__attribute__((destructor)) static void write_main_cpu(void)
{
    const char *path = getenv("TM_BENCH_CPU_OUT");
    struct rusage ru;
    if (!path || getrusage(RUSAGE_THREAD, &ru) != 0)
        return;
    double s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
               ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
    char line[64];
    int n = snprintf(line, sizeof line, "%.6f\n", s);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ssize_t rc = write(fd, line, (size_t)n);
    (void)rc;
    close(fd);
}
