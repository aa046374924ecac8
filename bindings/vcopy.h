/*
** vcopy.h — copying Lua values between VMs (go.spawn arguments and
** results; shared channels later): a Lua value is encoded into a flat byte
** buffer in one VM and decoded in another. Copied: nil, booleans, integers
** and floats (kept apart), strings (any bytes), plain tables of these
** (nested; no metatables; cycles and shared subtables are rejected) and
** shared channels (a handle to the same channel arrives). Connections move
** (unless VC_NOCONN). Anything else raises. A buffer may cross threads
** freely: it holds one ref on each shared channel it names (taken once the
** whole encoding succeeded, dropped by vbuf_free), and every decode makes
** handles with refs of their own, so a buffer may be decoded any number of
** times.
*/
#ifndef GLR_VCOPY_H
#define GLR_VCOPY_H

#include <stddef.h>

#include <lua.h>

#include "../runtime/common.h"

typedef struct vbuf {
  char *p;
  size_t len, cap;
  bool refs; /* holds refs on shared channels (vbuf_free drops them) */
} vbuf;

enum { VC_NOCONN = 1 }; /* vcopy_encode_ex flags: connections raise */

/* vcopy_encode — appends values [first, first+n) of L to b; raises a Lua
** error (b is then freed) for a value that cannot be copied. */
GLR_INTERNAL void vcopy_encode(lua_State *L, int first, int n, vbuf *b, const char *what);
GLR_INTERNAL void vcopy_encode_ex(lua_State *L, int first, int n, vbuf *b, const char *what,
                                  int flags);
/* vcopy_decode — pushes the n values encoded in b; returns n. */
GLR_INTERNAL int vcopy_decode(lua_State *L, const vbuf *b);
/* vbuf_free — frees b's bytes and drops its shared channel refs; any
** thread. */
GLR_INTERNAL void vbuf_free(vbuf *b);

#endif
