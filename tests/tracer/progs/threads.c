/* threads.c — cross-thread frees with heavy address reuse.
 *
 * Five producers allocate blocks and pass them through a shared queue to
 * three consumers that free them (eight threads), so addresses are freed by
 * one thread and reused by another constantly.  Each producer also leaks
 * exactly 3 blocks of 48 bytes inside region "worker".
 * Expected: region worker leaks 15 blocks / 720 bytes; every queued block
 * is freed (PRODUCERS * PER_PRODUCER frees of queued blocks).
 */
#include <pthread.h>

#include "prog_util.h"
#include "tidemark.h"

#define PRODUCERS 5
#define CONSUMERS 3
#define PER_PRODUCER 20000
#define QSIZE 1024

static void *queue[QSIZE];
static unsigned head, tail;
static int producers_left = PRODUCERS;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static void *leaked[PRODUCERS * 3];

NOINLINE static void worker_leak(int id)
{
    for (int i = 0; i < 3; i++)
        leaked[id * 3 + i] = malloc(48);
}

static void *producer(void *arg)
{
    int id = (int)(long)arg;
    tidemark_region_begin("worker");
    for (int i = 0; i < PER_PRODUCER; i++) {
        void *p = malloc(16 + (size_t)(i % 64));
        pthread_mutex_lock(&mu);
        while (head - tail == QSIZE)
            pthread_cond_wait(&not_full, &mu);
        queue[head++ % QSIZE] = p;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&mu);
    }
    worker_leak(id);
    tidemark_region_end();
    pthread_mutex_lock(&mu);
    producers_left--;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *consumer(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&mu);
        while (head == tail && producers_left > 0)
            pthread_cond_wait(&not_empty, &mu);
        if (head == tail) {
            pthread_mutex_unlock(&mu);
            return NULL;
        }
        void *p = queue[tail++ % QSIZE];
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&mu);
        free(p);
    }
}

int main(void)
{
    pthread_t t[PRODUCERS + CONSUMERS];
    for (long i = 0; i < PRODUCERS; i++)
        CHECK(pthread_create(&t[i], NULL, producer, (void *)i) == 0);
    for (int i = 0; i < CONSUMERS; i++)
        CHECK(pthread_create(&t[PRODUCERS + i], NULL, consumer, NULL) == 0);
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        pthread_join(t[i], NULL);
    sink = leaked;
    return 0;
}
