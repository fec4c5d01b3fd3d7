/* locate.c — the preload and the Python package, found from the running
 * binary's own location (/proc/self/exe), never from the working
 * directory, the environment's search paths or a path fixed at build time:
 * an installed tidemark uses the files installed with it, a built one the
 * build tree's, wherever either was moved.
 *
 * A layout is a pair of paths relative to the binary's directory, which
 * CMake computes from its install and build directories.  The installed
 * layout is tried first (a build tree has no lib/tidemark/), and a layout
 * is taken whole: the Python package, whose _pystacks module shares a
 * struct with the preload, always comes from beside the preload chosen. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "locate.h"

enum { PRELOAD, PYTHON, NPARTS };
typedef const char *layout[NPARTS];

static const layout layouts[] = {
    {[PRELOAD] = TM_INSTALLED_PRELOAD, [PYTHON] = TM_INSTALLED_PYTHON},
    {[PRELOAD] = TM_BUILT_PRELOAD, [PYTHON] = TM_BUILT_PYTHON},
};
#define NLAYOUTS (sizeof layouts / sizeof *layouts)

/* out = the directory of the running binary. */
static int locate_exe_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0)
        return -errno;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
    return 0;
}

/* out = dir/rel, made canonical when it exists (so LD_PRELOAD and the
 * messages read /usr/lib/..., not /usr/bin/../lib/...). */
static int locate_join(char *out, size_t len, const char *dir, const char *rel)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    char real[PATH_MAX];
    const char *best = realpath(path, real) ? real : path;
    n = snprintf(out, len, "%s", best);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The first layout whose preload is there; NULL when none is. */
static const layout *locate_layout(const char *dir)
{
    for (size_t i = 0; i < NLAYOUTS; i++) {
        char path[PATH_MAX];
        if (locate_join(path, sizeof path, dir, layouts[i][PRELOAD]) == 0 &&
            access(path, R_OK) == 0)
            return &layouts[i];
    }
    return NULL;
}

/* out = the part of the binary's layout; on failure, every place it
 * looked. */
static int locate_part(char *out, size_t len, int part)
{
    char dir[PATH_MAX];
    out[0] = '\0';
    if (locate_exe_dir(dir, sizeof dir) < 0)
        return -ENOENT;
    const layout *l = locate_layout(dir);
    if (l)
        return locate_join(out, len, dir, (*l)[part]);
    size_t used = 0;
    for (size_t i = 0; i < NLAYOUTS && used < len; i++) {
        int n = snprintf(out + used, len - used, "%s%s/%s", i ? " or " : "", dir,
                         layouts[i][part]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return -ENOENT;
}

/* The environment's override, else the part of the binary's layout; it
 * must be readable either way. */
static int locate(char *out, size_t len, const char *env_name, int part)
{
    const char *env = getenv(env_name);
    int rc = 0;
    if (env && *env)
        snprintf(out, len, "%s", env);
    else
        rc = locate_part(out, len, part);
    return rc < 0 ? rc : access(out, R_OK) == 0 ? 0 : -ENOENT;
}

int tm_locate_preload(char *out, size_t len)
{
    return locate(out, len, "TIDEMARK_LIB", PRELOAD);
}

int tm_locate_python(char *out, size_t len)
{
    return locate(out, len, "TIDEMARK_PYTHONPATH", PYTHON);
}
