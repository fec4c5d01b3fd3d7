/* flood.c — events faster than the writer thread can encode them.
 *
 * One thread allocates and frees FLOOD_PAIRS blocks as fast as it can inside
 * region "flood", so the ring of chunks fills and the recording thread has
 * to wait for (or help) the writer while the writer samples RSS and flushes.
 * Then it leaks exactly 7 blocks of 24 bytes.
 * Expected: region flood has 1 invocation with exactly FLOOD_PAIRS
 * allocations and frees; 7 blocks / 168 bytes leak; no block is missing.
 */
#include "prog_util.h"
#include "tidemark.h"

#define FLOOD_PAIRS 5000000

int main(void)
{
    void *ring[64] = {0};
    tidemark_region_begin("flood");
    for (long i = 0; i < FLOOD_PAIRS + 64; i++) {
        unsigned k = (unsigned)i & 63;
        free(ring[k]);
        ring[k] = i < FLOOD_PAIRS ? malloc(16 + (size_t)(i * 7) % 500) : NULL;
    }
    tidemark_region_end();
    for (int i = 0; i < 7; i++)
        ring[i] = malloc(24);
    sink = ring[0];
    return 0;
}
