/* exec.c — the exec family.
 *
 * An exec replaces the process image without running exit handlers, so
 * the trace is finished first (lifecycle.c, tm_exec_begin): everything
 * buffered reaches the file, with END: exec.  Only an exec whose file can
 * be run does that: a PATH search made one exec at a time (Python's
 * os.execvp) fails at every directory but one and must not end the trace
 * each time.  When the real call returns anyway, it failed, and the
 * process goes on in a new trace (tm_exec_failed).
 *
 * glibc's execl, execlp, execle, execv and execvp reach the kernel through
 * an internal call, not through execve, so each is interposed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_internal.h"

#define EXPORT __attribute__((visibility("default")))

/* Would an exec of file find something to run?  With `search`, a name
 * without a slash is looked up in PATH, as execvp does. */
static int runnable(const char *file, int search)
{
    if (!file || !*file)
        return 0;
    if (!search || strchr(file, '/'))
        return access(file, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    size_t flen = tm_strlen(file);
    char buf[4096];
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : tm_strlen(p);
        if (dlen + 1 + flen < sizeof buf) {
            if (dlen == 0) { /* an empty entry is the working directory */
                memcpy(buf, file, flen + 1);
            } else {
                memcpy(buf, p, dlen);
                buf[dlen] = '/';
                memcpy(buf + dlen + 1, file, flen + 1);
            }
            if (access(buf, X_OK) == 0)
                return 1;
        }
        if (!end)
            return 0;
        p = end;
    }
}

/* Finishes the trace when the exec should replace the image; returns
 * whether it did, for exec_failed. */
static int exec_begin(const char *file, int search)
{
    if (tm_unlikely(!tm_real.free))
        tm_resolve_real();
    if (tm_self.busy || __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)
        return 0;
    int saved = errno;
    int go = file ? runnable(file, search) : 1;
    errno = saved;
    return go ? tm_exec_begin() : 0;
}

static int exec_failed(int ended, int rc)
{
    tm_exec_failed(ended);
    return rc;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    int ended = exec_begin(path, 0);
    return exec_failed(ended, tm_real.execve(path, argv, envp));
}

EXPORT int execv(const char *path, char *const argv[])
{
    int ended = exec_begin(path, 0);
    return exec_failed(ended, tm_real.execv(path, argv));
}

EXPORT int execvp(const char *file, char *const argv[])
{
    int ended = exec_begin(file, 1);
    return exec_failed(ended, tm_real.execvp(file, argv));
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    int ended = exec_begin(file, 1);
    return exec_failed(ended, tm_real.execvpe(file, argv, envp));
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    int ended = exec_begin(NULL, 0);
    return exec_failed(ended, tm_real.fexecve(fd, argv, envp));
}

/* The list forms: arguments up to the NULL, then (execle) the
 * environment, gathered on the stack. */
#define ARGS_MAX 4096

static int count_args(const char *arg, va_list ap)
{
    int n = 1;
    while (arg && n < ARGS_MAX) {
        arg = va_arg(ap, const char *);
        n++;
    }
    return arg ? -1 : n;
}

/* An exec of the list form: argv gathered from the arguments, then `more`
 * (execle's environment), then `call`. */
#define EXEC_LIST(name, first, more, call)                                     \
    EXPORT int name(const char *first, const char *arg, ...)                   \
    {                                                                          \
        va_list ap;                                                            \
        va_start(ap, arg);                                                     \
        int n = count_args(arg, ap);                                           \
        va_end(ap);                                                            \
        if (n < 0) {                                                           \
            errno = E2BIG;                                                     \
            return -1;                                                         \
        }                                                                      \
        char *argv[n];                                                         \
        argv[0] = (char *)arg;                                                 \
        va_start(ap, arg);                                                     \
        for (int i = 1; i < n; i++)                                            \
            argv[i] = va_arg(ap, char *);                                      \
        more;                                                                  \
        va_end(ap);                                                            \
        return call;                                                           \
    }

EXEC_LIST(execl, path, (void)0, execv(path, argv))
EXEC_LIST(execlp, file, (void)0, execvp(file, argv))
EXEC_LIST(execle, path, char *const *envp = va_arg(ap, char *const *), execve(path, argv, envp))
