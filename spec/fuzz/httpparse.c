/* httpparse.c — libFuzzer target: arbitrary bytes as HTTP heads for
** goluarun.httpparse (bindings/lhttp.c), request and response.
**
** The differential check against the LPeg reference grammar runs in the
** specs (spec/httpparse_spec.lua: LPeg needs the Lua library around it).
** Here, under ASan/UBSan, on raw bytes: no out-of-bounds read, and what a
** match returns holds the grammar's invariants: next lies after pos and
** within the input, field names are lower-case tokens, values carry no
** CR, LF, NUL or surrounding whitespace, at most max_headers names; the
** head alone parses to the same end, and bytes appended after it change
** nothing. Any other outcome aborts.
** Input: byte 0 picks max_headers, byte 1 the start offset, the rest is
** the text. One Lua state for the whole run; single-threaded.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

static void fail(const char *what) {
  fprintf(stderr, "httpparse: %s\n", what);
  abort();
}

/* calls httpparse[fn](s, pos, max): the position after the head, or 0 (no
** match); the results stay on the stack (nres of them on a match) */
static lua_Integer parse(const char *fn, const char *s, size_t n, lua_Integer pos,
                         lua_Integer max, int *nres) {
  int top = lua_gettop(L);
  lua_getfield(L, 1, fn);
  lua_pushlstring(L, s, n);
  lua_pushinteger(L, pos);
  lua_pushinteger(L, max);
  if (lua_pcall(L, 3, LUA_MULTRET, 0) != LUA_OK) fail(lua_tostring(L, -1));
  *nres = lua_gettop(L) - top;
  if (lua_isnil(L, top + 1)) return 0;
  if (!lua_isinteger(L, -1)) fail("next is not an integer");
  return lua_tointeger(L, -1);
}

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

static void check_name(const char *k, size_t n) {
  if (n == 0) fail("empty field name");
  for (size_t i = 0; i < n; i++)
    if ((k[i] >= 'A' && k[i] <= 'Z') || k[i] <= ' ' || k[i] == ':' || (unsigned char)k[i] > 126)
      fail("field name not a lower-case token");
}

/* joined: a request's repeated field ("a, " + "" may end in a space) */
static void check_value(const char *v, size_t n, bool joined) {
  if (n > 0 && (is_ws(v[0]) || (!joined && is_ws(v[n - 1])))) fail("value not trimmed");
  for (size_t i = 0; i < n; i++)
    if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0') fail("CR, LF or NUL in a value");
}

/* the headers table at idx: names and values (or lists of them) */
static void check_headers(int idx, lua_Integer max, bool joined) {
  lua_Integer count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t kn, vn;
    if (lua_type(L, -2) != LUA_TSTRING) fail("field name not a string");
    const char *k = lua_tolstring(L, -2, &kn);
    check_name(k, kn);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
      if (len < 2) fail("a list of fewer than two values");
      for (lua_Integer i = 1; i <= len; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING) fail("list value not a string");
        const char *v = lua_tolstring(L, -1, &vn);
        check_value(v, vn, false);
        lua_pop(L, 1);
      }
    } else {
      if (lua_type(L, -1) != LUA_TSTRING) fail("value not a string");
      const char *v = lua_tolstring(L, -1, &vn);
      check_value(v, vn, joined);
    }
    count++;
    lua_pop(L, 1);
  }
  if (count > max) fail("more names than max_headers");
}

static void one(const char *fn, int hidx, const char *s, size_t n, lua_Integer pos,
                lua_Integer max) {
  int top = lua_gettop(L), nres;
  lua_Integer nx = parse(fn, s, n, pos, max, &nres);
  if (nx) {
    if (nx <= pos || (size_t)nx > n + 1) fail("next out of range");
    check_headers(top + hidx, max, hidx == 6);
    /* the head alone, and the head with bytes after it: the same end */
    int r2;
    if (parse(fn, s, (size_t)nx - 1, pos, max, &r2) != nx) fail("head alone differs");
    char *more = malloc((size_t)nx + 4);
    if (!more) fail("out of memory");
    memcpy(more, s, (size_t)nx - 1);
    memcpy(more + nx - 1, "GET ", 4);
    lua_Integer nx2 = parse(fn, more, (size_t)nx + 3, pos, max, &r2);
    free(more);
    if (nx2 != nx) fail("appended bytes changed the head");
  }
  lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    if (!L) fail("no Lua state");
    luaL_requiref(L, "httpparse", luaopen_httpparse, 0); /* index 1 */
  }
  if (size < 2) return 0;
  lua_Integer max = data[0] % 8 == 0 ? 100 : data[0] % 8;
  const char *s = (const char *)data + 2;
  size_t n = size - 2;
  lua_Integer pos = 1 + (lua_Integer)(n ? data[1] % (n + 1) : 0);
  one("request", 6, s, n, pos, max);
  one("response", 5, s, n, pos, max);
  /* free this input's garbage now: libFuzzer's leak check runs after an
  ** input that mallocs more than it frees, and that scan is slow */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
