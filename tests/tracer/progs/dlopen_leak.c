/* dlopen_leak.c LIB — dlopens LIB, leaks 4 x 256 bytes through its
 * tm_leaky_make, dlcloses it.  The leak must be symbolized to
 * tm_leaky_make in the library although it is unloaded by the end.
 *
 * LIB may be a bare name: the program's RUNPATH ($ORIGIN/plugins) finds
 * it, as the dynamic loader finds it for the object that calls dlopen. */
#include <dlfcn.h>

#include "prog_util.h"

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    void *h = dlopen(argv[1], RTLD_NOW);
    CHECK(h);
    void *(*make)(size_t) = (void *(*)(size_t))dlsym(h, "tm_leaky_make");
    CHECK(make);
    static void *keep[4];
    for (int i = 0; i < 4; i++)
        keep[i] = make(256);
    sink = keep;
    CHECK(dlclose(h) == 0);
    return 0;
}
