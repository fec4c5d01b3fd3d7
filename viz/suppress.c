/* suppress.c — see suppress.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "suppress.h"

/* Glob with only `*`, matching the whole of text. */
static bool glob(const char *p, const char *t)
{
    for (; *p; p++, t++) {
        if (*p == '*') {
            while (p[1] == '*')
                p++;
            if (!p[1])
                return true;
            for (; *t; t++)
                if (glob(p + 1, t))
                    return true;
            return false;
        }
        if (!*t || *p != *t)
            return false;
    }
    return !*t;
}

bool tm_pattern_match(const char *pattern, const char *text)
{
    if (!text)
        return false;
    size_t n = strlen(pattern);
    bool start = n > 0 && pattern[0] == '^';
    bool end = n > (size_t)start && pattern[n - 1] == '$';
    char buf[1024];
    /* Unanchored sides become `*`, so a plain word is a substring match. */
    int len = snprintf(buf, sizeof buf, "%s%.*s%s", start ? "" : "*",
                       (int)(n - start - end), pattern + start, end ? "" : "*");
    if (len < 0 || (size_t)len >= sizeof buf)
        return false;
    return glob(buf, text);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int tm_suppressions_load(tm_suppressions *s, const char *path)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f) {
        tm_error("%s: %s", path, strerror(errno));
        return TM_EXIT_BAD_INPUT;
    }
    char line[1024];
    int lineno = 0, rc = TM_EXIT_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        if (strncmp(l, "leak:", 5) != 0 || !*trim(l + 5)) {
            tm_error("%s:%d: expected 'leak:PATTERN', got '%s'", path, lineno, l);
            rc = TM_EXIT_BAD_INPUT;
            break;
        }
        char **p = realloc(s->patterns, (size_t)(s->count + 1) * sizeof *p);
        if (!p || !(p[s->count] = strdup(trim(l + 5)))) {
            if (p)
                s->patterns = p;
            tm_error("%s: out of memory", path);
            rc = TM_EXIT_FAIL;
            break;
        }
        s->patterns = p;
        s->count++;
    }
    fclose(f);
    if (rc == TM_EXIT_OK && !(s->hits = calloc((size_t)s->count + 1, sizeof *s->hits)))
        rc = TM_EXIT_FAIL;
    if (rc != TM_EXIT_OK)
        tm_suppressions_free(s);
    return rc;
}

void tm_suppressions_free(tm_suppressions *s)
{
    for (int i = 0; i < s->count; i++)
        free(s->patterns[i]);
    free(s->patterns);
    free(s->hits);
    memset(s, 0, sizeof *s);
}

int tm_suppressions_match(tm_suppressions *s, tm_trace *t, tm_stack_key stack)
{
    if (!s->count)
        return -1;
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, stack, frames, TM_MAX_FRAMES);
    for (int k = 0; k < s->count; k++) {
        for (int i = 0; i < n; i++) {
            if (tm_pattern_match(s->patterns[k], frames[i].function) ||
                tm_pattern_match(s->patterns[k], frames[i].file) ||
                tm_pattern_match(s->patterns[k], frames[i].module)) {
                s->hits[k]++;
                return k;
            }
        }
    }
    return -1;
}
