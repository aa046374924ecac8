/*
** lresp.c — goluarun.respparse: the RESP2 reader's byte loop in C, and
** the command writer's.
**
**   respparse.config(lim, null, null_array) -> cfg  (lim: resp.lua's checked
**                                              limits table, every key set)
**   respparse.batch(cfg, buf, pos, q, ends [, max [, base]]) -> k, nextpos, tables, q
**       decodes the complete top-level values of buf from pos (1-based), at
**       most max (default 256): value i in q[base + i] (base default 0; q
**       nil: a new table, sized for the values to come and one field),
**       the position after it in ends[i] (ends may be nil: not kept).
**       k is 0 when the value at pos is not one this loop takes; nextpos is
**       the position after value k (pos when k is 0); tables counts the
**       values that are tables (arrays, errors, the null sentinels).
**   respparse.commands(cfg, buf, pos, pool, argc [, max]) -> k, nextpos
**       the fast path of a server: decodes the complete commands at pos
**       (arrays of 1 .. CMD_ARGS bulk strings, at most max, default 256)
**       into the REUSED tables pool[1 .. k] (made when missing), command
**       i's count in argc[i]; slots past it are nil. k is 0 at the first
**       value that is anything else (left to batch / resp.lua, which give
**       the same table for a command). argc[0]: the k of the last call;
**       the tables past this k and up to that one are emptied (no string
**       of an old batch is kept alive by the pool).
**   respparse.command(name, ...) -> wire | nil, i
**       a command's wire text (an array of bulk strings) when the name is a
**       string and every argument a string or an integer; otherwise nil and
**       the index of the first word not taken (0: the name), for the Lua
**       encoder to handle (floats) or raise (misuse).
**   respparse.wbuf() -> wb                  a buffer of commands (pipelines)
**   respparse.append(p, name, ...) -> k | nil, i
**       command() onto the end of the buffer in p[1] (p: a pipeline table);
**       k: the commands in it now; nil, i as command() (nothing appended),
**       i -1 when p[1] is not a buffer
**   respparse.appender(name, slow) -> f     f(p, ...) appends the command
**       `name` as append(p, name, ...) and returns p; what append leaves
**       goes to slow(p, name, ...), whose result f returns
**   respparse.take(wb) -> bytes, count      what was appended since the
**       last take, and how many commands; wb is emptied
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

#include "errstr.h"
#include "lresp.h"

#define CFG_TNAME "goluarun.respparse.cfg"
#define WBUF_TNAME "goluarun.respparse.wbuf"
#define UV_CFG_MT 1           /* the module functions' upvalues: the metatables */
#define UV_WBUF_MT 2
#define UV_SCRATCH 3          /* command()'s buffer (rp_command only) */

/* the userdata at i when its metatable is the one in upvalue uv (no
** registry look-up by name: these run once per command) */
static void *check_own(lua_State *L, int i, int uv, const char *tname) {
  void *u = lua_touserdata(L, i);
  if (!u || !lua_getmetatable(L, i) || !lua_rawequal(L, -1, lua_upvalueindex(uv)))
    luaL_typeerror(L, i, tname);
  lua_pop(L, 1);
  return u;
}

#define BATCH_MAX 256
#define QUEUE_PRESIZE_MAX 65536 /* slots a new queue table is made with, at most */
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
  if (p + 2 < in->len && s[p] >= '1' && s[p] <= '9' && s[p + 1] == '\r' && s[p + 2] == '\n') {
    *n = s[p] - '0'; /* the commonest: one digit */
    *after = p + 3;
    return true;
  }
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

/* the batch's arguments after cfg and buf: the start position, where the
** values go (q[base + i], ends[i] unless ends is nil) and how many at most */
typedef struct batch_args {
  size_t start;
  lua_Integer max, base;
  bool with_ends;
} batch_args;

static batch_args batch_args_of(lua_State *L) {
  batch_args a;
  lua_Integer pos = luaL_checkinteger(L, 3);
  luaL_argcheck(L, pos >= 1, 3, "bad position");
  a.with_ends = !lua_isnoneornil(L, 5);
  if (a.with_ends) luaL_checktype(L, 5, LUA_TTABLE);
  a.max = luaL_optinteger(L, 6, BATCH_MAX);
  a.base = luaL_optinteger(L, 7, 0);
  luaL_argcheck(L, a.base >= 0, 7, "bad base");
  a.start = (size_t)pos - 1;
  return a;
}

/* q nil: a new table at 4, sized for the values the bytes after start can
** hold (3 bytes at least each), at most max, and one field more */
static void new_queue(lua_State *L, const batch_args *a, size_t len) {
  size_t n = len > a->start ? (len - a->start) / 3 : 0;
  if ((lua_Integer)n > a->max) n = a->max > 0 ? (size_t)a->max : 0;
  if (n > QUEUE_PRESIZE_MAX) n = QUEUE_PRESIZE_MAX;
  lua_createtable(L, (int)n, 1);
  lua_replace(L, 4);
}

static int rp_batch(lua_State *L) {
  resp_in in = { .cfg = check_own(L, 1, UV_CFG_MT, CFG_TNAME) };
  in.s = luaL_checklstring(L, 2, &in.len);
  batch_args a = batch_args_of(L);
  if (lua_isnil(L, 4)) new_queue(L, &a, in.len);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 7);
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  in.nulls = 8;
  size_t p = a.start, last = a.start; /* last: the end of the last value taken */
  lua_Integer k = 0, tables = 0;
  while (k < a.max && p < in.len) {
    in.vstart = p;
    resp_res r = decode_value(L, &in, &p, 0);
    if (r == R_DEFER) break;
    if (r == R_SKIP) continue;
    tables += lua_type(L, -1) == LUA_TTABLE;
    lua_rawseti(L, 4, a.base + ++k);
    last = p;
    if (!a.with_ends) continue;
    lua_pushinteger(L, (lua_Integer)p + 1);
    lua_rawseti(L, 5, k);
  }
  lua_pushinteger(L, k);
  lua_pushinteger(L, (lua_Integer)last + 1);
  lua_pushinteger(L, tables);
  lua_pushvalue(L, 4);
  return 4;
}

/* ---------- commands: flat arrays of bulk strings into reused tables ---------- */

#define CMD_ARGS 64 /* commands with more arguments go through batch */

/* where a command's words are in the buffer */
typedef struct cmd_words {
  size_t at[CMD_ARGS], len[CMD_ARGS];
  lua_Integer n;
} cmd_words;

/* the command at *pos when it is a complete array of bulk strings within
** every limit: its words in w, *pos past it; false otherwise */
static bool scan_command(const resp_in *in, size_t *pos, cmd_words *w) {
  size_t p;
  if (in->s[*pos] != '*' || !read_len(in, *pos + 1, &w->n, &p)) return false;
  if (w->n < 1 || w->n > CMD_ARGS || w->n > in->cfg->max_array || in->cfg->max_depth < 1)
    return false;
  for (lua_Integer i = 0; i < w->n; i++) {
    lua_Integer len;
    if (p >= in->len || in->s[p] != '$' || !read_len(in, p + 1, &len, &p)) return false;
    if (len < 0 || len > in->cfg->max_bulk) return false;
    size_t stop = p + (size_t)len;
    if ((lua_Integer)(stop + 2 - *pos) > in->cfg->max_value || !crlf_at(in, stop)) return false;
    w->at[i] = p, w->len[i] = (size_t)len;
    p = stop + 2;
  }
  *pos = p;
  return true;
}

/* the table at pool[i] (made when missing) pushed, and its old count */
static lua_Integer argv_table(lua_State *L, int pool, int argc, lua_Integer i) {
  if (lua_rawgeti(L, pool, i) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, -1);
    lua_rawseti(L, pool, i);
  }
  lua_rawgeti(L, argc, i);
  lua_Integer old = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return old;
}

/* slots from .. to of the table on top set to nil */
static void clear_slots(lua_State *L, lua_Integer from, lua_Integer to) {
  for (lua_Integer j = from; j <= to; j++) {
    lua_pushnil(L);
    lua_rawseti(L, -2, j);
  }
}

/* command i's words into pool[i], its count into argc[i] */
static void put_argv(lua_State *L, const resp_in *in, const cmd_words *w, lua_Integer i) {
  lua_Integer old = argv_table(L, 4, 5, i);
  for (lua_Integer j = 0; j < w->n; j++) {
    lua_pushlstring(L, in->s + w->at[j], w->len[j]);
    lua_rawseti(L, -2, j + 1);
  }
  clear_slots(L, w->n + 1, old);
  lua_pop(L, 1);
  lua_pushinteger(L, w->n);
  lua_rawseti(L, 5, i);
}

/* the tables k+1 .. argc[0] (the last call's k) emptied; argc[0] = k */
static void empty_rest(lua_State *L, lua_Integer k) {
  lua_rawgeti(L, 5, 0);
  lua_Integer last = lua_tointeger(L, -1);
  lua_pop(L, 1);
  for (lua_Integer i = k + 1; i <= last; i++) {
    lua_Integer old = argv_table(L, 4, 5, i);
    clear_slots(L, 1, old);
    lua_pop(L, 1);
    lua_pushinteger(L, 0);
    lua_rawseti(L, 5, i);
  }
  lua_pushinteger(L, k);
  lua_rawseti(L, 5, 0);
}

static int rp_commands(lua_State *L) {
  resp_in in = { .cfg = check_own(L, 1, UV_CFG_MT, CFG_TNAME) };
  in.s = luaL_checklstring(L, 2, &in.len);
  lua_Integer pos = luaL_checkinteger(L, 3);
  luaL_argcheck(L, pos >= 1, 3, "bad position");
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_Integer max = luaL_optinteger(L, 6, BATCH_MAX);
  lua_settop(L, 5);
  size_t p = (size_t)pos - 1;
  lua_Integer k = 0;
  cmd_words w;
  while (k < max && p < in.len) {
    in.vstart = p;
    if (!scan_command(&in, &p, &w)) break;
    put_argv(L, &in, &w, ++k);
  }
  empty_rest(L, k);
  lua_pushinteger(L, k);
  lua_pushinteger(L, (lua_Integer)p + 1);
  return 2;
}

/* ---------- the command writer ----------
** A command goes out as an array of bulk strings: "*<argc>\r\n" and
** "$<len>\r\n<bytes>\r\n" per word. These take a name (a string) and
** arguments that are strings or integers (in decimal, as Lua's tostring
** writes them); anything else — a float, a misuse — is left to the Lua
** encoder, which knows the float rule and raises the errors: the C side
** answers nil and the index of the first word it does not take (0 for the
** name). */

#define WBUF_KEEP (64 * 1024) /* capacity kept by take(); a larger one is freed */

/* a growing byte buffer for a pipeline's commands and their count; its
** memory comes from the VM's allocator (so it counts against the memory
** limit) and is freed by __gc. `magic` (the address of wbuf_magic) tells
** it from any other userdata where a pipeline table holds it (p[1]), with
** no metatable look-up per command. */
static const char wbuf_magic = 0;

typedef struct resp_wbuf {
  const char *magic;
  char *p;
  size_t len, cap;
  lua_Integer count; /* commands appended since the last take */
} resp_wbuf;

static void *vm_realloc(lua_State *L, void *p, size_t old, size_t size) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  return f(ud, p, old, size);
}

static int wbuf_gc(lua_State *L) {
  resp_wbuf *w = lua_touserdata(L, 1);
  if (w->p) vm_realloc(L, w->p, w->cap, 0);
  w->p = NULL, w->len = w->cap = 0;
  return 0;
}

/* room for `more` bytes after len: false when it cannot be had */
static bool wbuf_room(lua_State *L, resp_wbuf *w, size_t more) {
  if (more <= w->cap - w->len) return true;
  if (more > ((size_t)-1) / 4 - w->len) return false;
  size_t cap = w->cap ? w->cap : 256;
  while (cap - w->len < more) cap *= 2;
  char *p = vm_realloc(L, w->p, w->cap, cap);
  if (!p) return false;
  w->p = p, w->cap = cap;
  return true;
}

/* a command that cannot be written: w back to its length before it (so a
** caller that catches the error finds no half command), and the error */
static int no_room(lua_State *L, resp_wbuf *w, size_t start) {
  w->len = start;
  return luaL_error(L, ERRSTR_NOMEM);
}

/* a new buffer on the stack, with the buffers' metatable (upvalue) */
static resp_wbuf *wbuf_new(lua_State *L, int mt) {
  mt = lua_absindex(L, mt);
  resp_wbuf *w = lua_newuserdatauv(L, sizeof *w, 0);
  *w = (resp_wbuf){ .magic = &wbuf_magic };
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
  return w;
}

/* the buffer at stack index i, or NULL */
static resp_wbuf *wbuf_at(lua_State *L, int i) {
  resp_wbuf *w = lua_touserdata(L, i);
  if (!w || lua_type(L, i) != LUA_TUSERDATA || lua_rawlen(L, i) != sizeof *w) return NULL;
  return w->magic == &wbuf_magic ? w : NULL;
}

/* writes n in decimal at d; returns the byte after it */
static char *put_uint(char *d, size_t n) {
  if (n < 10) {
    *d++ = (char)('0' + n);
    return d;
  }
  char tmp[24];
  size_t i = 0;
  do tmp[i++] = (char)('0' + n % 10), n /= 10; while (n > 0);
  while (i > 0) *d++ = tmp[--i];
  return d;
}

/* "<c><n>\r\n" at d (at most 23 bytes) */
static char *put_head(char *d, char c, size_t n) {
  *d++ = c;
  d = put_uint(d, n);
  *d++ = '\r', *d++ = '\n';
  return d;
}

/* an integer argument's decimal text, written backwards from the end of
** tmp[24]; returns where it starts */
static char *int_text(char *end, lua_Integer v) {
  lua_Unsigned u = v < 0 ? 0u - (lua_Unsigned)v : (lua_Unsigned)v;
  do *--end = (char)('0' + u % 10), u /= 10; while (u > 0);
  if (v < 0) *--end = '-';
  return end;
}

/* the text of the argument at stack index i when this writer takes it (a
** string; an integer, in decimal), else NULL. No
** conversion on the Lua stack: nothing here can run the collector (and so
** a finalizer that would use the same buffer). */
static const char *word_of(lua_State *L, int i, char tmp[24], size_t *len) {
  int t = lua_type(L, i);
  if (t == LUA_TSTRING) return lua_tolstring(L, i, len);
  if (t != LUA_TNUMBER || !lua_isinteger(L, i)) return NULL;
  char *s = int_text(tmp + 24, lua_tointeger(L, i));
  *len = (size_t)(tmp + 24 - s);
  return s;
}

/* the words of a command, gathered a few at a time before they are
** written (one reservation per group) */
#define GROUP 8

typedef struct word_group {
  const char *s[GROUP];
  size_t len[GROUP];
  char num[GROUP][24]; /* integer arguments' text */
  size_t bytes;        /* their wire size */
} word_group;

/* a bulk string at d */
static char *put_word(char *d, const char *s, size_t len) {
  d = put_head(d, '$', len);
  memcpy(d, s, len);
  d += len;
  *d++ = '\r', *d++ = '\n';
  return d;
}

static char *put_group(char *d, const word_group *g, int n) {
  for (int j = 0; j < n; j++) d = put_word(d, g->s[j], g->len[j]);
  return d;
}

/* gathers the arguments in slots i .. i + n - 1 into g: -1, or the index
** of the one not taken */
static int gather(lua_State *L, word_group *g, int i, int n) {
  g->bytes = 0;
  for (int j = 0; j < n; j++) {
    const char *s = word_of(L, i + j, g->num[j], &g->len[j]);
    if (!s) return i + j;
    g->s[j] = s;
    g->bytes += g->len[j] + 25; /* "$" 20 digits at most, 2 CRLFs */
  }
  return -1;
}



/* appends a command to w: the name at stack index `name` (a string), the
** arguments in slots first .. top. Returns -1 (and counts it), or the
** index of the first word not taken (0: the name) with w as it was. */
static int put_command(lua_State *L, resp_wbuf *w, int name, int first, int top) {
  size_t start = w->len, nlen;
  if (lua_type(L, name) != LUA_TSTRING) return 0;
  const char *ns = lua_tolstring(L, name, &nlen);
  if (!wbuf_room(L, w, nlen + 48)) return no_room(L, w, start);
  char *d = put_head(w->p + w->len, '*', (size_t)(top - first + 2));
  w->len = (size_t)(put_word(d, ns, nlen) - w->p);
  for (int i = first; i <= top; i += GROUP) {
    word_group g;
    int n = top - i + 1 < GROUP ? top - i + 1 : GROUP;
    int bad = gather(L, &g, i, n);
    if (bad >= 0) {
      w->len = start;
      return bad - first + 1;
    }
    if (!wbuf_room(L, w, g.bytes)) return no_room(L, w, start);
    w->len = (size_t)(put_group(w->p + w->len, &g, n) - w->p);
  }
  w->count++;
  return -1;
}

static int not_taken(lua_State *L, int bad) {
  luaL_pushfail(L);
  lua_pushinteger(L, bad);
  return 2;
}

/* command(name, ...) -> wire | nil, i (built in the VM's scratch buffer) */
static int rp_command(lua_State *L) {
  resp_wbuf *w = lua_touserdata(L, lua_upvalueindex(UV_SCRATCH));
  w->len = 0;
  int bad = put_command(L, w, 1, 2, lua_gettop(L));
  if (bad >= 0) return not_taken(L, bad);
  lua_pushlstring(L, w->p, w->len);
  w->len = 0;
  return 1;
}

static int rp_wbuf(lua_State *L) {
  wbuf_new(L, lua_upvalueindex(UV_WBUF_MT));
  return 1;
}

/* the buffer a pipeline table at stack index p holds in p[1], pushed (so
** it stays reachable while it is written), or NULL with nothing pushed */
static resp_wbuf *pipe_wbuf(lua_State *L, int p) {
  if (lua_type(L, p) != LUA_TTABLE) return NULL;
  lua_rawgeti(L, p, 1);
  resp_wbuf *w = wbuf_at(L, -1);
  if (!w) lua_pop(L, 1);
  return w;
}

/* append(p, name, ...) -> k (the commands in p's buffer) | nil, i (i -1:
** p holds no buffer) */
static int rp_append(lua_State *L) {
  int top = lua_gettop(L);
  resp_wbuf *w = pipe_wbuf(L, 1);
  if (!w) return not_taken(L, -1);
  int bad = put_command(L, w, 2, 3, top);
  if (bad >= 0) return not_taken(L, bad);
  lua_pushinteger(L, w->count);
  return 1;
}

/* an appender's call(p, ...): the command (upvalue 1, the name) appended to
** p's buffer, and p; anything it leaves goes to slow(p, name, ...) (upvalue
** 2), whose result it returns */
static int pipe_command(lua_State *L) {
  int top = lua_gettop(L);
  resp_wbuf *w = pipe_wbuf(L, 1);
  if (w && put_command(L, w, lua_upvalueindex(1), 2, top) < 0) {
    lua_settop(L, 1);
    return 1;
  }
  if (top < 1) top = 1;
  lua_settop(L, top);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 3);
  lua_call(L, top + 1, 1);
  return 1;
}

/* appender(name, slow) -> function(p, ...) */
static int rp_appender(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_pushcclosure(L, pipe_command, 2);
  return 1;
}

/* take(wb) -> the bytes appended since the last take, their command count */
static int rp_take(lua_State *L) {
  resp_wbuf *w = wbuf_at(L, 1);
  luaL_argexpected(L, w != NULL, 1, WBUF_TNAME);
  lua_pushlstring(L, w->p ? w->p : "", w->len);
  lua_pushinteger(L, w->count);
  w->len = 0, w->count = 0;
  if (w->cap > WBUF_KEEP) {
    vm_realloc(L, w->p, w->cap, 0);
    w->p = NULL, w->cap = 0;
  }
  return 2;
}

/* ---------- the module ---------- */

int luaopen_respparse(lua_State *L) {
  static const luaL_Reg fns[] = {
    { "config", rp_config },
    { "batch", rp_batch },
    { "commands", rp_commands },
    { "command", rp_command },
    { "wbuf", rp_wbuf },
    { "append", rp_append },
    { "appender", rp_appender },
    { "take", rp_take },
    { NULL, NULL },
  };
  luaL_newlibtable(L, fns);
  luaL_newmetatable(L, CFG_TNAME);
  luaL_newmetatable(L, WBUF_TNAME);
  lua_pushcfunction(L, wbuf_gc);
  lua_setfield(L, -2, "__gc");
  wbuf_new(L, -1); /* command()'s scratch buffer */
  luaL_setfuncs(L, fns, 3);
  return 1;
}

