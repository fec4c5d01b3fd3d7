/* hwm.c — the kernel's high-water mark of the process's RSS (VmHWM), read
 * once as the trace ends (issue 32 item 3): the writer's 10 ms samples miss
 * short peaks, VmHWM does not.
 *
 * From the end path, which may be a signal handler's: system calls only,
 * into a static buffer (the recorder's lock is held, so one caller at a
 * time), errno kept. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"

static char status_buf[4096];

/* VmHWM in bytes, 0 when /proc/self/status cannot be read. */
static uint64_t read_vm_hwm(void)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    long n = syscall(SYS_read, fd, status_buf, sizeof status_buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return 0;
    status_buf[n] = 0;
    static const char key[] = "\nVmHWM:";
    for (const char *p = status_buf; *p; p++) {
        int k = 0;
        while (key[k] && p[k] == key[k])
            k++;
        if (key[k])
            continue;
        p += k;
        while (*p == ' ' || *p == '\t')
            p++;
        uint64_t kib = 0;
        while (*p >= '0' && *p <= '9')
            kib = kib * 10 + (uint64_t)(*p++ - '0');
        return kib * 1024;
    }
    return 0;
}

/* Lock held: the HWM record, when VmHWM could be read and RSS is
 * measured at all. */
TM_HIDDEN void tm_record_hwm_locked(void)
{
    if (!tm_cfg.rss_interval_ms)
        return; /* RSS figures are off (--rss-interval 0) */
    int saved = errno;
    uint64_t bytes = read_vm_hwm();
    errno = saved;
    if (!bytes)
        return;
    uint8_t rec[1 + 10], *p = rec;
    *p++ = TM_OP_HWM;
    p = tm_put_u(p, bytes);
    tm_append_locked(rec, (size_t)(p - rec));
}
