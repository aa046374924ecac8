/*
** vcopy.h — copying Lua values between VMs (go.spawn arguments and
** results, shared channel elements): a Lua value is encoded into a flat
** byte buffer in one VM and decoded in another. Copied: nil, booleans,
** integers and floats (kept apart), strings (any bytes), plain tables of
** these (nested; no metatables; cycles and shared subtables are rejected)
** and userdata whose class carries a vcopy hook (below). Anything else
** raises.
**
** Class hooks: a userdata class that can cross VMs stores a pointer to a
** static const vcopy_class in its metatable (vcopy_sethook); vcopy finds it
** there and includes no module header. Its payload follows a tag and the
** hook's address in the buffer (hooks are static, so the address is valid
** in every VM). Today: connections (conn.c; they move: the sending handle
** reads as closed) and shared channels (lschan.c; a handle to the same
** channel arrives).
**
** Refs: a buffer may cross threads freely. It holds one ref on everything
** its payloads reference (taken by walk(+1) once the whole encoding
** succeeded, dropped by vbuf_free through walk(-1)), and every decode makes
** values with refs of their own, so a buffer may be decoded any number of
** times. Encoding runs on the sending VM's M; decoding on the receiver's.
**
** Trust: vcopy_decode trusts its buffer. Buffers are made only by
** vcopy_encode in this process and never read from a file or the network
** (they hold class hooks' addresses, which no byte check could vouch for),
** so decode does no bounds checks. vcopy_validate is the checking reader
** for bytes of unknown origin (the fuzz target spec/fuzz/vcopy_decode.c
** feeds it arbitrary bytes): it accepts exactly the encodings of plain
** values that vcopy_decode decodes without reading out of bounds.
*/
#ifndef GLR_VCOPY_H
#define GLR_VCOPY_H

#include <stddef.h>
#include <string.h>

#include <lua.h>

#include "../runtime/common.h"

typedef struct vbuf {
  char *p;
  size_t len, cap;
  bool refs; /* holds refs through class hooks (vbuf_free drops them) */
} vbuf;

enum { VC_NOCONN = 1 }; /* vcopy_encode_ex flags: values that move raise */

typedef struct vcopy_class {
  /* moves — the value moves (one owner at a time): encoding runs twice,
  ** a first pass that only checks (encode with commit false) and a second
  ** that moves; VC_NOCONN refuses it with "<plural> cannot be sent ..." */
  bool moves;
  const char *plural; /* "connections": for that message */
  /* encode — the userdata at idx: check it can cross (and, if commit, do
  ** it) and append its payload with vbuf_put. Returns NULL, or why it
  ** cannot cross (nothing appended). */
  const char *(*encode)(lua_State *L, int idx, vbuf *b, bool commit);
  /* decode — push the value of the payload at *p; advance *p past it */
  void (*decode)(lua_State *L, const char **p);
  /* walk — advance *p past a payload; delta +1 / -1 retains / releases
  ** what it references (0: only skip). Any thread. */
  void (*walk)(const char **p, int delta);
  bool refs; /* walk retains/releases something */
} vcopy_class;

/* vcopy_sethook — store cls in the metatable at mtidx. */
GLR_INTERNAL void vcopy_sethook(lua_State *L, int mtidx, const vcopy_class *cls);
/* vbuf_put — append n bytes (raises "not enough memory"; b is then freed) */
GLR_INTERNAL void vbuf_put(lua_State *L, vbuf *b, const void *src, size_t n);
/* vbuf_get — copy n bytes from *p and advance it (payload readers) */
static inline void vbuf_get(const char **p, void *dst, size_t n) {
  memcpy(dst, *p, n);
  *p += n;
}

/* vcopy_encode — appends values [first, first+n) of L to b; raises a Lua
** error (b is then freed) for a value that cannot be copied. */
GLR_INTERNAL void vcopy_encode(lua_State *L, int first, int n, vbuf *b, const char *what);
GLR_INTERNAL void vcopy_encode_ex(lua_State *L, int first, int n, vbuf *b, const char *what,
                                  int flags);
/* vcopy_decode — pushes the n values encoded in b; returns n. */
GLR_INTERNAL int vcopy_decode(lua_State *L, const vbuf *b);
/* vcopy_validate — NULL if the n bytes at p are one whole encoding of plain
** values (no userdata: hook addresses cannot be checked) that vcopy_decode
** reads entirely within bounds and stores without raising (no nil or NaN
** table keys, depth as vcopy_encode allows, no trailing bytes); else why
** not. Decoding may still raise for memory or stack. Pure; any thread. */
GLR_INTERNAL const char *vcopy_validate(const char *p, size_t n);
/* vbuf_free — frees b's bytes and drops its refs; any thread. */
GLR_INTERNAL void vbuf_free(vbuf *b);

#endif
