/* vcopy_decode.c — libFuzzer target: arbitrary bytes as a vcopy buffer.
**
** vcopy_decode trusts its buffer (vcopy.h, "Trust"); vcopy_validate is the
** check for bytes of unknown origin. Here: validate must answer without
** reading out of bounds; a buffer it accepts must decode (only memory or
** stack limits may raise), the values must encode again, and that encoding
** must validate and hold as many values. Any other outcome aborts.
** One Lua state for the whole run; single-threaded.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "vcopy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

static void fail(const char *what, const char *why) {
  fprintf(stderr, "vcopy_decode: %s: %s\n", what, why ? why : "?");
  abort();
}

/* decode_encode — [buffer] -> decode it, encode the values again, check */
static int decode_encode(lua_State *S) {
  const vbuf *b = lua_touserdata(S, 1);
  int n = vcopy_decode(S, b);
  vbuf out = {0};
  vcopy_encode(S, 2, n, &out, "re-encode");
  const char *why = vcopy_validate(out.p, out.len);
  if (why) fail("a re-encoding does not validate", why);
  size_t n2;
  memcpy(&n2, out.p, sizeof n2);
  if (n2 != (size_t)n) fail("a re-encoding has another value count", NULL);
  vbuf_free(&out);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L && !(L = luaL_newstate())) abort();
  /* a private copy of exactly size bytes: ASan sees any read past it */
  char *copy = malloc(size ? size : 1);
  if (!copy) abort();
  memcpy(copy, data, size);
  if (vcopy_validate(copy, size) == NULL) {
    vbuf b = {copy, size, size, false};
    lua_settop(L, 0);
    lua_pushcfunction(L, decode_encode);
    lua_pushlightuserdata(L, &b);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      const char *msg = lua_tostring(L, -1);
      /* the only clean refusals of a valid buffer: memory and the stack */
      if (!msg || (!strstr(msg, "not enough memory") && !strstr(msg, "stack overflow")))
        fail("a valid buffer raised", msg);
    }
    lua_settop(L, 0);
  }
  /* what this input made is freed now: libFuzzer then sees as many frees
  ** as allocations and skips its leak check (a real leak still trips it) */
  lua_gc(L, LUA_GCCOLLECT);
  free(copy);
  return 0;
}
