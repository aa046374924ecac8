/*
** vcopy.h — copying Lua values between VMs (go.spawn arguments and
** results; shared channels later): a Lua value is encoded into a flat byte
** buffer in one VM and decoded in another. Copied: nil, booleans, integers
** and floats (kept apart), strings (any bytes), plain tables of these
** (nested; no metatables; cycles and shared subtables are rejected).
** Anything else raises. Pure data: a buffer may cross threads freely.
*/
#ifndef GLR_VCOPY_H
#define GLR_VCOPY_H

#include <stddef.h>

#include <lua.h>

#include "../runtime/common.h"

typedef struct vbuf {
  char *p;
  size_t len, cap;
} vbuf;

/* vcopy_encode — appends values [first, first+n) of L to b; raises a Lua
** error (b is then freed) for a value that cannot be copied. */
GLR_INTERNAL void vcopy_encode(lua_State *L, int first, int n, vbuf *b, const char *what);
/* vcopy_decode — pushes the n values encoded in b; returns n. */
GLR_INTERNAL int vcopy_decode(lua_State *L, const vbuf *b);
GLR_INTERNAL void vbuf_free(vbuf *b);

#endif
