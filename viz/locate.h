/* locate.h — where the running tidemark keeps its parts: the preload and
 * the Python package, found relative to the binary itself. */
#ifndef TM_LOCATE_H
#define TM_LOCATE_H

#include <stddef.h>

/* The preload: TIDEMARK_LIB, else the layout of this binary.  0, or
 * -ENOENT with out naming where it looked. */
int tm_locate_preload(char *out, size_t len);

/* The directory holding the tidemark Python package (the one built or
 * installed with the preload): TIDEMARK_PYTHONPATH, else the layout of
 * this binary.  0, or -ENOENT with out naming where it looked. */
int tm_locate_python(char *out, size_t len);

#endif /* TM_LOCATE_H */
