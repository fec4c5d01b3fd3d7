/* tm_burgers.h — the Burgers right-hand side in C (see burgers.c). */
#ifndef TM_BURGERS_H
#define TM_BURGERS_H

#include "tm_callback.h"

typedef struct tm_burgers {
    intptr_t n;
    double dx;
} tm_burgers;

void tm_burgers_init(tm_burgers *b, intptr_t n);
/* A tm_rhs_fn; user_data is a tm_burgers. */
int tm_burgers_rhs(double t, const tm_array *y, tm_array *ydot, void *user_data);

#endif /* TM_BURGERS_H */
