/* suppress.h — LeakSanitizer-style suppressions: `leak:PATTERN` lines,
 * matched against every frame's function, file and module.  PATTERN is a
 * substring; `*` matches any run of characters, a leading `^` or trailing
 * `$` anchors it. */
#ifndef TM_SUPPRESS_H
#define TM_SUPPRESS_H

#include <stdbool.h>

#include "cli.h"

typedef struct tm_suppressions {
    char **patterns;
    int count;
    unsigned *hits;         /* groups each pattern suppressed */
} tm_suppressions;

/* Loads FILE; on error prints "FILE:LINE: reason" and returns 2. */
int tm_suppressions_load(tm_suppressions *s, const char *path);
void tm_suppressions_free(tm_suppressions *s);
/* Index of the first pattern matching a frame of the stack, or -1. */
int tm_suppressions_match(tm_suppressions *s, tm_trace *t, tm_stack_key stack);
/* Exposed for the unit tests. */
bool tm_pattern_match(const char *pattern, const char *text);

#endif /* TM_SUPPRESS_H */
