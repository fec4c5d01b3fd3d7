/* json.h — a small streaming JSON writer for the reports' --json output.
 * Commas, indentation and string escaping are handled here so reports only
 * say what they emit. */
#ifndef TM_JSON_H
#define TM_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TM_JSON_MAX_DEPTH 32

typedef struct tm_json {
    FILE *out;
    int depth;
    bool has_items[TM_JSON_MAX_DEPTH];
    bool after_key;
} tm_json;

void tm_json_init(tm_json *j, FILE *out);
/* Every report's JSON document: opens the top-level object and writes
 * "schema_version" first.  Bump TM_JSON_SCHEMA_VERSION when a key changes
 * meaning or goes away (adding keys does not). */
#define TM_JSON_SCHEMA_VERSION 1
void tm_json_report(tm_json *j, FILE *out);
void tm_json_object(tm_json *j);        /* { */
void tm_json_object_end(tm_json *j);    /* } */
void tm_json_array(tm_json *j);         /* [ */
void tm_json_array_end(tm_json *j);     /* ] */
void tm_json_key(tm_json *j, const char *key);
void tm_json_str(tm_json *j, const char *s);   /* NULL -> null */
void tm_json_u64(tm_json *j, uint64_t v);
void tm_json_i64(tm_json *j, int64_t v);
void tm_json_double(tm_json *j, double v);     /* non-finite -> null */
void tm_json_bool(tm_json *j, bool v);
void tm_json_null(tm_json *j);
void tm_json_hex(tm_json *j, uint64_t v);      /* "0x..." string */
/* Finishes the document with a newline. */
void tm_json_end(tm_json *j);

/* key + value shorthands */
void tm_json_kstr(tm_json *j, const char *key, const char *s);
void tm_json_ku64(tm_json *j, const char *key, uint64_t v);
void tm_json_ki64(tm_json *j, const char *key, int64_t v);
void tm_json_kdouble(tm_json *j, const char *key, double v);
void tm_json_kbool(tm_json *j, const char *key, bool v);

#endif /* TM_JSON_H */
