/*
** lresp.c — goluarun.respparse: the RESP2 reader's byte loop in C.
**
**   respparse.config(lim, null, null_array) -> cfg  (lim: resp.lua's checked
**                                              limits table, every key set)
**   respparse.batch(cfg, buf, pos, q, ends [, max]) -> k
**       decodes the complete top-level values of buf from pos (1-based), at
**       most max (default 256): value i in q[i], the position after it in
**       ends[i]. k is 0 when the value at pos is not one this loop takes.
**
** "Defer": this reader only takes a top-level value that is complete,
** well-formed and within every limit, and then gives exactly the value
** resp.lua's parser gives (same mapping, same sentinels). Anything else —
** an incomplete value, a malformed or over-limit one, an inline command
** with quotes, a nesting deeper than C_DEPTH — stops the batch at that
** value's first byte and leaves it to the Lua parser, which decides (the
** value, "incomplete", or its protocol error). So errors are resp.lua's by
** construction, and the differential spec checks the rest.
*/
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lresp.h"

#define CFG_TNAME "goluarun.respparse.cfg"
#define BATCH_MAX 256
#define C_DEPTH 64 /* deeper nesting is left to the Lua parser */

typedef struct resp_cfg {
  lua_Integer max_bulk, max_value, max_array, max_inline, max_depth;
  bool inline_ok;
} resp_cfg;

/* one batch's input: buf[0 .. len), the current top-level value starts at
** vstart; the null sentinels sit at stack indices nulls, nulls + 1 */
typedef struct resp_in {
  const char *s;
  size_t len, vstart;
  const resp_cfg *cfg;
  int nulls;
} resp_in;

typedef enum { R_DEFER = 0, R_VALUE, R_SKIP } resp_res;

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool crlf_at(const resp_in *in, size_t p) {
  return p + 1 < in->len && in->s[p] == '\r' && in->s[p + 1] == '\n';
}

/* a declared length "-1" | "0" | [1-9][0-9]* (at most 18 digits) + CRLF */
static bool read_len(const resp_in *in, size_t p, lua_Integer *n, size_t *after) {
  const char *s = in->s;
  if (p + 1 < in->len && s[p] == '-' && s[p + 1] == '1') {
    *n = -1, p += 2;
  } else if (p < in->len && s[p] == '0') {
    *n = 0, p += 1;
  } else {
    if (p >= in->len || s[p] < '1' || s[p] > '9') return false;
    lua_Integer v = 0;
    size_t start = p;
    while (p < in->len && is_digit(s[p]) && p - start < 18) v = v * 10 + (s[p++] - '0');
    *n = v;
  }
  if (!crlf_at(in, p)) return false;
  *after = p + 2;
  return true;
}

/* an integer line "-"? digits CRLF, as Lua's tonumber reads it (overflow:
** Lua gives a float, resp.lua a protocol error: defer) */
static bool read_int(const resp_in *in, size_t p, lua_Integer *n, size_t *after) {
  const lua_Unsigned maxby10 = LUA_MAXINTEGER / 10, maxlastd = LUA_MAXINTEGER % 10;
  bool neg = p < in->len && in->s[p] == '-';
  if (neg) p++;
  lua_Unsigned a = 0;
  size_t start = p;
  for (; p < in->len && is_digit(in->s[p]); p++) {
    lua_Unsigned d = (lua_Unsigned)(in->s[p] - '0');
    if (a >= maxby10 && (a > maxby10 || d > maxlastd + neg)) return false;
    a = a * 10 + d;
  }
  if (p == start || !crlf_at(in, p)) return false;
  *n = neg ? (lua_Integer)(0u - a) : (lua_Integer)a;
  *after = p + 2;
  return true;
}

static resp_res decode_value(lua_State *L, const resp_in *in, size_t *pos, int depth);

static resp_res decode_bulk(lua_State *L, const resp_in *in, size_t *pos) {
  lua_Integer n;
  size_t after;
  if (!read_len(in, *pos + 1, &n, &after)) return R_DEFER;
  if (n == -1) {
    lua_pushvalue(L, in->nulls);
    *pos = after;
    return R_VALUE;
  }
  if (n > in->cfg->max_bulk) return R_DEFER;
  size_t stop = after + (size_t)n; /* where the closing CRLF must be */
  if ((lua_Integer)(stop + 2 - in->vstart) > in->cfg->max_value) return R_DEFER;
  if (!crlf_at(in, stop)) return R_DEFER;
  lua_pushlstring(L, in->s + after, (size_t)n);
  *pos = stop + 2;
  return R_VALUE;
}

static resp_res decode_array(lua_State *L, const resp_in *in, size_t *pos, int depth) {
  lua_Integer n;
  size_t p;
  if (!read_len(in, *pos + 1, &n, &p)) return R_DEFER;
  if (n > in->cfg->max_array) return R_DEFER;
  if (n == -1) {
    lua_pushvalue(L, in->nulls + 1);
    *pos = p;
    return R_VALUE;
  }
  if (depth >= in->cfg->max_depth || depth >= C_DEPTH || !lua_checkstack(L, 4)) return R_DEFER;
  /* every element takes 3 bytes at least ("+\r\n"): fewer cannot hold the
  ** array, and the table is sized from a count the bytes back */
  if (n > (lua_Integer)((in->len - p) / 3)) return R_DEFER;
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (decode_value(L, in, &p, depth + 1) != R_VALUE) {
      lua_pop(L, 1);
      return R_DEFER;
    }
    lua_rawseti(L, -2, i);
  }
  *pos = p;
  return R_VALUE;
}

/* '+' simple string or '-' error: the line up to CRLF */
static resp_res decode_line(lua_State *L, const resp_in *in, size_t *pos) {
  size_t p = *pos;
  const char *nl = memchr(in->s + p, '\n', in->len - p);
  if (!nl) return R_DEFER;
  size_t nlp = (size_t)(nl - in->s);
  if ((lua_Integer)(nlp - p) - 1 > in->cfg->max_inline) return R_DEFER;
  if (nlp - 1 <= p || in->s[nlp - 1] != '\r') return R_DEFER;
  if (in->s[p] == '+') {
    lua_pushlstring(L, in->s + p + 1, nlp - p - 2);
  } else {
    lua_createtable(L, 0, 1);
    lua_pushlstring(L, in->s + p + 1, nlp - p - 2);
    lua_setfield(L, -2, "err");
  }
  *pos = nlp + 1;
  return R_VALUE;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f' || c == '\0';
}

/* the words of line s[p .. e) (no quotes in it) into a new table */
static int split_words(lua_State *L, const char *s, size_t p, size_t e) {
  lua_newtable(L);
  int n = 0;
  while (p < e) {
    while (p < e && is_space(s[p])) p++;
    size_t w = p;
    while (p < e && !is_space(s[p])) p++;
    if (p > w) {
      lua_pushlstring(L, s + w, p - w);
      lua_rawseti(L, -2, ++n);
    }
  }
  return n;
}

/* an inline command (top level only): bare words; quotes are deferred */
static resp_res decode_inline(lua_State *L, const resp_in *in, size_t *pos) {
  size_t p = *pos;
  const char *nl = memchr(in->s + p, '\n', in->len - p);
  if (!nl || !in->cfg->inline_ok) return R_DEFER;
  size_t nlp = (size_t)(nl - in->s);
  if ((lua_Integer)(nlp - p) - 1 > in->cfg->max_inline) return R_DEFER;
  if (memchr(in->s + p, '"', nlp - p) || memchr(in->s + p, '\'', nlp - p)) return R_DEFER;
  *pos = nlp + 1;
  if (split_words(L, in->s, p, nlp) > 0) return R_VALUE;
  lua_pop(L, 1); /* an empty line is skipped */
  return R_SKIP;
}

static resp_res decode_value(lua_State *L, const resp_in *in, size_t *pos, int depth) {
  if (*pos >= in->len) return R_DEFER;
  switch (in->s[*pos]) {
  case '$': return decode_bulk(L, in, pos);
  case '*': return decode_array(L, in, pos, depth);
  case '+':
  case '-': return decode_line(L, in, pos);
  case ':': {
    lua_Integer n;
    if (!read_int(in, *pos + 1, &n, pos)) return R_DEFER;
    lua_pushinteger(L, n);
    return R_VALUE;
  }
  default: return depth == 0 ? decode_inline(L, in, pos) : R_DEFER;
  }
}

static lua_Integer limit_of(lua_State *L, int t, const char *key) {
  lua_getfield(L, t, key);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static int rp_config(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  resp_cfg *cfg = lua_newuserdatauv(L, sizeof *cfg, 2);
  cfg->max_bulk = limit_of(L, 1, "max_bulk");
  cfg->max_value = limit_of(L, 1, "max_value");
  cfg->max_array = limit_of(L, 1, "max_array");
  cfg->max_inline = limit_of(L, 1, "max_inline");
  cfg->max_depth = limit_of(L, 1, "max_depth");
  lua_getfield(L, 1, "inline");
  cfg->inline_ok = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 2);
  luaL_setmetatable(L, CFG_TNAME);
  return 1;
}

static int rp_batch(lua_State *L) {
  resp_in in = { .cfg = luaL_checkudata(L, 1, CFG_TNAME) };
  in.s = luaL_checklstring(L, 2, &in.len);
  lua_Integer pos = luaL_checkinteger(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_Integer max = luaL_optinteger(L, 6, BATCH_MAX);
  luaL_argcheck(L, pos >= 1, 3, "bad position");
  lua_settop(L, 6);
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  in.nulls = 7;
  size_t p = (size_t)pos - 1;
  lua_Integer k = 0;
  while (k < max && p < in.len) {
    in.vstart = p;
    resp_res r = decode_value(L, &in, &p, 0);
    if (r == R_DEFER) break;
    if (r == R_SKIP) continue;
    lua_rawseti(L, 4, ++k);
    lua_pushinteger(L, (lua_Integer)p + 1);
    lua_rawseti(L, 5, k);
  }
  lua_pushinteger(L, k);
  return 1;
}

int luaopen_respparse(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "config", rp_config },
    { "batch", rp_batch },
    { NULL, NULL },
  };
  luaL_newmetatable(L, CFG_TNAME);
  lua_pop(L, 1);
  luaL_newlib(L, fns);
  return 1;
}
