/* host_fds.c — what the tracer leaves in the process it traces.
 *
 *   host_fds EXPECTED_FD
 *
 * Allocates through a few frames (so the unwinder reads its rules), leaks
 * 3 blocks of 123 bytes from host_fds_leak, then opens /dev/null: the
 * descriptor must be EXPECTED_FD ("-": any; exit 10 otherwise).  Prints
 * "other FD TARGET" for every open descriptor that is neither 0-2, the
 * one just opened, nor the listing's own, and "lib PATH" for every shared
 * object mapped.  Exits 0 (11 when /dev/null cannot be opened). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) static void *host_fds_leak(size_t n)
{
    return malloc(n);
}

__attribute__((noinline)) static void churn(int i)
{
    void *volatile p = malloc(40 + (size_t)i);
    free(p);
}

static void list_fds(int opened)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == opened || fd == dirfd(d))
            continue;
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        /* close-on-exec is in the flags of /proc/self/fdinfo (octal). */
        snprintf(link, sizeof link, "/proc/self/fdinfo/%d", fd);
        FILE *info = fopen(link, "r");
        char line[256];
        unsigned flags = 0;
        while (info && fgets(line, sizeof line, info))
            if (sscanf(line, "flags: %o", &flags) == 1)
                break;
        if (info)
            fclose(info);
        printf("other %d %s %s\n", fd, flags & O_CLOEXEC ? "cloexec" : "inherited", target);
    }
    closedir(d);
}

static void list_libs(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (!path || !strstr(path, ".so"))
            continue;
        path[strcspn(path, "\n")] = 0;
        printf("lib %s\n", path);
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    for (int i = 0; i < 1000; i++)
        churn(i);
    for (int i = 0; i < 3; i++)
        if (!host_fds_leak(123))
            return 12;
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0) {
        perror("open /dev/null");
        return 11;
    }
    printf("first %d\n", fd);
    list_fds(fd);
    list_libs();
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "-") != 0 && fd != atoi(argv[1]))
        return 10;
    return 0;
}
