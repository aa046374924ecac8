/* vcopy_roundtrip.c — libFuzzer target: decode(encode(v)) == v.
**
** The input is a small stack program that builds Lua values (nil, booleans,
** integers, floats with any bits, strings, nested tables, and a second
** reference to a table, which makes cycles and shared subtables). The
** values are encoded; the encoder may refuse only a shared or cyclic
** table or one nested too deep. An encoding must pass vcopy_validate and
** decode to values equal to the originals (same types, integer and float
** kept apart, float bits kept, same keys and values). Any other outcome
** aborts. One Lua state for the whole run; single-threaded.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "vcopy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VALUES 64 /* stack slots the program may fill */

static lua_State *L;

static void fail(const char *what, const char *why) {
  fprintf(stderr, "vcopy_roundtrip: %s: %s\n", what, why ? why : "?");
  abort();
}

typedef struct prog {
  const uint8_t *p, *end;
} prog;

static size_t take(prog *g, void *dst, size_t n) {
  size_t have = (size_t)(g->end - g->p);
  if (n > have) n = have;
  memset(dst, 0, n);
  memcpy(dst, g->p, n);
  g->p += n;
  return n;
}

/* build — run the program: the values end on the stack above base */
static void build(lua_State *S, prog *g, int base) {
  luaL_checkstack(S, MAX_VALUES + 2, "fuzz program");
  while (g->p < g->end) {
    uint8_t op = *g->p++;
    int top = lua_gettop(S) - base;
    if (top >= MAX_VALUES && (op & 7) < 6) continue;
    switch (op & 7) {
      case 0: lua_pushnil(S); break;
      case 1: lua_pushboolean(S, op >> 7); break;
      case 2: { lua_Integer i = 0; take(g, &i, sizeof i); lua_pushinteger(S, i); break; }
      case 3: { lua_Number f = 0; take(g, &f, sizeof f); lua_pushnumber(S, f); break; }
      case 4: { /* string: a length byte, then that many bytes (or fewer) */
        uint8_t n = 0;
        take(g, &n, 1);
        size_t have = (size_t)(g->end - g->p);
        size_t k = n < have ? n : have;
        lua_pushlstring(S, (const char *)g->p, k);
        g->p += k;
        break;
      }
      case 5: lua_newtable(S); break;
      case 6: { /* t[k] = v: the three topmost, if t is a table and k fits */
        if (top < 3 || !lua_istable(S, -3)) break;
        int kt = lua_type(S, -2);
        bool ok = kt == LUA_TBOOLEAN || kt == LUA_TSTRING ||
                  (kt == LUA_TNUMBER && !(lua_isinteger(S, -2) == 0 && isnan(lua_tonumber(S, -2))));
        if (ok && !lua_isnil(S, -1)) lua_rawset(S, -3);
        else lua_pop(S, 2);
        break;
      }
      default: /* 7: another reference to the n-th value, if a table */
        if (top > 0 && top < MAX_VALUES) {
          int idx = base + 1 + (op >> 3) % top;
          if (lua_istable(S, idx)) lua_pushvalue(S, idx);
        }
    }
  }
}

static bool same(lua_State *S, int a, int b, int depth);

static bool same_table(lua_State *S, int a, int b, int depth) {
  size_t na = 0, nb = 0;
  lua_pushnil(S);
  while (lua_next(S, a)) {
    na++;
    lua_pushvalue(S, -2);
    lua_rawget(S, b); /* keys are never tables here: plain lookup works */
    bool eq = same(S, lua_gettop(S) - 1, lua_gettop(S), depth + 1);
    lua_pop(S, 2);
    if (!eq) {
      lua_pop(S, 1);
      return false;
    }
  }
  lua_pushnil(S);
  while (lua_next(S, b)) {
    nb++;
    lua_pop(S, 1);
  }
  return na == nb;
}

static bool same(lua_State *S, int a, int b, int depth) {
  luaL_checkstack(S, 6, "compare");
  int t = lua_type(S, a);
  if (t != lua_type(S, b)) return false;
  switch (t) {
    case LUA_TNIL: return true;
    case LUA_TBOOLEAN: return lua_toboolean(S, a) == lua_toboolean(S, b);
    case LUA_TNUMBER: {
      if (lua_isinteger(S, a) != lua_isinteger(S, b)) return false;
      if (lua_isinteger(S, a)) return lua_tointeger(S, a) == lua_tointeger(S, b);
      lua_Number x = lua_tonumber(S, a), y = lua_tonumber(S, b);
      return (isnan(x) && isnan(y)) || memcmp(&x, &y, sizeof x) == 0;
    }
    case LUA_TSTRING: {
      size_t la, lb;
      const char *sa = lua_tolstring(S, a, &la), *sb = lua_tolstring(S, b, &lb);
      return la == lb && memcmp(sa, sb, la) == 0;
    }
    case LUA_TTABLE: return same_table(S, a, b, depth);
    default: return false;
  }
}

static bool expected_refusal(const char *msg) {
  return msg && (strstr(msg, "contains itself (or is shared)") ||
                 strstr(msg, "only plain tables (no metatables, depth <=") ||
                 strstr(msg, "not enough memory") || strstr(msg, "stack overflow"));
}

/* roundtrip — [program] -> build, encode, validate, decode, compare */
static int roundtrip(lua_State *S) {
  prog *g = lua_touserdata(S, 1);
  build(S, g, 1);
  int n = lua_gettop(S) - 1;
  vbuf b = {0};
  vcopy_encode(S, 2, n, &b, "fuzz"); /* may raise: only expected_refusal */
  const char *why = vcopy_validate(b.p, b.len);
  if (why) fail("an encoding does not validate", why);
  int m = vcopy_decode(S, &b);
  vbuf_free(&b);
  if (m != n) fail("decode gave another value count", NULL);
  for (int i = 0; i < n; i++)
    if (!same(S, 2 + i, 2 + n + i, 0)) fail("a value changed in the round trip", NULL);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L && !(L = luaL_newstate())) abort();
  prog g = {data, data + size};
  lua_settop(L, 0);
  lua_pushcfunction(L, roundtrip);
  lua_pushlightuserdata(L, &g);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK && !expected_refusal(lua_tostring(L, -1)))
    fail("encoding raised", lua_tostring(L, -1));
  lua_settop(L, 0);
  /* what this input made is freed now: libFuzzer then sees as many frees
  ** as allocations and skips its leak check (a real leak still trips it) */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
