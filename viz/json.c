/* json.c — see json.h. */
#include "json.h"

#include <inttypes.h>
#include <math.h>

void tm_json_init(tm_json *j, FILE *out)
{
    *j = (tm_json){.out = out};
}

void tm_json_report(tm_json *j, FILE *out)
{
    tm_json_init(j, out);
    tm_json_object(j);
    tm_json_ku64(j, "schema_version", TM_JSON_SCHEMA_VERSION);
}

static void indent(tm_json *j)
{
    fputc('\n', j->out);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

/* Separator before a value: a comma after an earlier item of the same
 * container, and a fresh indented line. */
static void before_value(tm_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0) {
        if (j->has_items[j->depth])
            fputc(',', j->out);
        j->has_items[j->depth] = true;
        indent(j);
    }
}

static void open_container(tm_json *j, char c)
{
    before_value(j);
    fputc(c, j->out);
    if (j->depth + 1 < TM_JSON_MAX_DEPTH)
        j->depth++;
    j->has_items[j->depth] = false;
}

static void close_container(tm_json *j, char c)
{
    bool had = j->has_items[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had)
        indent(j);
    fputc(c, j->out);
}

void tm_json_object(tm_json *j) { open_container(j, '{'); }
void tm_json_object_end(tm_json *j) { close_container(j, '}'); }
void tm_json_array(tm_json *j) { open_container(j, '['); }
void tm_json_array_end(tm_json *j) { close_container(j, ']'); }

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void tm_json_key(tm_json *j, const char *key)
{
    before_value(j);
    put_string(j->out, key);
    fputs(": ", j->out);
    j->after_key = true;
}

void tm_json_str(tm_json *j, const char *s)
{
    before_value(j);
    if (s)
        put_string(j->out, s);
    else
        fputs("null", j->out);
}

void tm_json_u64(tm_json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRIu64, v);
}

void tm_json_i64(tm_json *j, int64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRId64, v);
}

void tm_json_double(tm_json *j, double v)
{
    before_value(j);
    if (isfinite(v))
        fprintf(j->out, "%.9g", v);
    else
        fputs("null", j->out);
}

void tm_json_bool(tm_json *j, bool v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->out);
}

void tm_json_null(tm_json *j)
{
    before_value(j);
    fputs("null", j->out);
}

void tm_json_hex(tm_json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->out, "\"0x%" PRIx64 "\"", v);
}

void tm_json_end(tm_json *j)
{
    fputc('\n', j->out);
}

void tm_json_kstr(tm_json *j, const char *key, const char *s) { tm_json_key(j, key); tm_json_str(j, s); }
void tm_json_ku64(tm_json *j, const char *key, uint64_t v) { tm_json_key(j, key); tm_json_u64(j, v); }
void tm_json_ki64(tm_json *j, const char *key, int64_t v) { tm_json_key(j, key); tm_json_i64(j, v); }
void tm_json_kdouble(tm_json *j, const char *key, double v) { tm_json_key(j, key); tm_json_double(j, v); }
void tm_json_kbool(tm_json *j, const char *key, bool v) { tm_json_key(j, key); tm_json_bool(j, v); }
