/* end_lib.c — a library that allocates in its constructor and frees in its
 * destructor, which runs after the program's exit handlers: the free must
 * be in the trace (valgrind: 0 bytes in use at exit). */
#include <stdlib.h>

static void *volatile kept;

__attribute__((constructor)) static void end_lib_up(void)
{
    kept = malloc(500);
}

__attribute__((destructor)) static void end_lib_down(void)
{
    free(kept);
}

/* Gives the program a reason to link this library. */
void end_lib_linked(void)
{
}
