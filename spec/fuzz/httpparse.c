/* httpparse.c — libFuzzer target: arbitrary bytes as HTTP heads for
** goluarun.httpparse (bindings/lhttp.c), request and response.
**
** The differential check against the LPeg reference grammar runs in the
** specs (spec/httpparse_spec.lua: LPeg needs the Lua library around it).
** Here, under ASan/UBSan, on raw bytes: no out-of-bounds read, and what a
** match returns holds the grammar's invariants: next lies after pos and
** within the input, field names are lower-case tokens, values carry no
** CR, LF, NUL, other control byte but HTAB, DEL or surrounding whitespace
** (values are scanned eight bytes a step), at most max_headers names; a
** request's `plain` is true only where its definition holds (HTTP/1.1,
** origin-form, one Host without a comma, no framing field); the head
** alone parses to the same end, and bytes appended after it change
** nothing. Any other outcome aborts.
**
** The same bytes go to the proxy's calls as well: httpparse.relay (its
** lines are field lines "name: value\r\n" without a hop-by-hop name, it
** ends where the request or response parser ends when that one matches,
** and relaying its own output gives that output back; a drop set as a
** string gives what the same set as a table gives), httpparse.lines (where
** it accepts s, relay(s) is s with the same seen bits; relay's output is
** always accepted), httpparse.response
** with a set `only` (the same match and end as without it, only names of
** the set), and httpparse.block over a table made of the bytes (names and
** values split at NULs: one CRLF per value written, or nil with "name" or
** "value"); the answer parse that keeps its field lines' spans
** (lhttp_response_head with an lhttp_fields, as httpread.readresponse
** does) gives through lhttp_relay_fields what relay gives for the same
** head: lines, seen, or nil with seen 0.
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

/* calls httpparse[fn](s, pos, max): the position after the head (result
** nxi), or 0 (no match); the results stay on the stack (nres of them on a
** match) */
static lua_Integer parse(const char *fn, int nxi, const char *s, size_t n, lua_Integer pos,
                         lua_Integer max, int *nres) {
  int top = lua_gettop(L);
  lua_getfield(L, 1, fn);
  lua_pushlstring(L, s, n);
  lua_pushinteger(L, pos);
  lua_pushinteger(L, max);
  if (lua_pcall(L, 3, LUA_MULTRET, 0) != LUA_OK) fail(lua_tostring(L, -1));
  *nres = lua_gettop(L) - top;
  if (lua_isnil(L, top + 1)) return 0;
  if (*nres != nxi + (nxi == 7)) fail("wrong number of results");
  if (!lua_isinteger(L, top + nxi)) fail("next is not an integer");
  return lua_tointeger(L, top + nxi);
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
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)v[i];
    if (b == '\r' || b == '\n' || b == '\0') fail("CR, LF or NUL in a value");
    if ((b < 0x20 && b != '\t') || b == 0x7F) fail("a control byte in a value");
  }
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

/* a request's `plain` (result 8, the results from top + 1): a boolean,
** true only for HTTP/1.1, a target starting with "/", a Host without a
** comma (one field: a repeat is joined with ", ") and none of the framing
** fields */
static void check_plain(int top) {
  if (lua_type(L, top + 8) != LUA_TBOOLEAN) fail("plain is not a boolean");
  if (!lua_toboolean(L, top + 8)) return;
  size_t pn;
  const char *path = lua_tolstring(L, top + 2, &pn);
  if (pn == 0 || path[0] != '/') fail("plain with a target not in origin-form");
  if (strcmp(lua_tostring(L, top + 4), "1") || strcmp(lua_tostring(L, top + 5), "1"))
    fail("plain with a version other than 1.1");
  static const char *const framing[] = {"connection", "content-length", "transfer-encoding",
                                         "expect"};
  for (int i = 0; i < 4; i++) {
    if (lua_getfield(L, top + 6, framing[i]) != LUA_TNIL) fail("plain with a framing field");
    lua_pop(L, 1);
  }
  if (lua_getfield(L, top + 6, "host") != LUA_TSTRING) fail("plain without a Host");
  if (strchr(lua_tostring(L, -1), ',')) fail("plain with a comma in Host");
  lua_pop(L, 1);
}

/* the parser fn on s: its invariants; the position after the head, or 0 */
static lua_Integer one(const char *fn, int hidx, const char *s, size_t n, lua_Integer pos,
                       lua_Integer max) {
  int top = lua_gettop(L), nres;
  lua_Integer nx = parse(fn, hidx + 1, s, n, pos, max, &nres);
  if (nx) {
    if (nx <= pos || (size_t)nx > n + 1) fail("next out of range");
    check_headers(top + hidx, max, hidx == 6);
    if (hidx == 6) check_plain(top);
    /* the head alone, and the head with bytes after it: the same end */
    int r2;
    if (parse(fn, hidx + 1, s, (size_t)nx - 1, pos, max, &r2) != nx) fail("head alone differs");
    char *more = malloc((size_t)nx + 4);
    if (!more) fail("out of memory");
    memcpy(more, s, (size_t)nx - 1);
    memcpy(more + nx - 1, "GET ", 4);
    lua_Integer nx2 = parse(fn, hidx + 1, more, (size_t)nx + 3, pos, max, &r2);
    free(more);
    if (nx2 != nx) fail("appended bytes changed the head");
  }
  lua_settop(L, top);
  return nx;
}

/* calls httpparse[fn] with the values pushed after it (nargs): results
** left on the stack, their count returned */
static int call(const char *fn, int nargs) {
  int top = lua_gettop(L) - nargs;
  lua_getfield(L, 1, fn);
  lua_insert(L, top + 1);
  if (lua_pcall(L, nargs, LUA_MULTRET, 0) != LUA_OK) fail(lua_tostring(L, -1));
  return lua_gettop(L) - top;
}

static const char *const HOP[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                                  "transfer-encoding", "upgrade", "content-length",
                                  "proxy-authenticate", "proxy-authorization", NULL};

/* relay's output: field lines, none of them hop-by-hop */
static void check_lines(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t k = i;
    while (k < n && s[k] != ':') k++;
    if (k == i || k + 1 >= n || s[k + 1] != ' ') fail("relay: not a name and \": \"");
    char name[32];
    size_t kn = k - i;
    for (size_t j = 0; kn < sizeof name && j < kn; j++)
      name[j] = (char)((s[i + j] >= 'A' && s[i + j] <= 'Z') ? s[i + j] + 32 : s[i + j]);
    for (int h = 0; HOP[h] && kn < sizeof name; h++)
      if (strlen(HOP[h]) == kn && memcmp(HOP[h], name, kn) == 0) fail("relay: a hop-by-hop field");
    size_t e = k + 2;
    while (e < n && s[e] != '\r' && s[e] != '\n' && s[e] != '\0') {
      unsigned char b = (unsigned char)s[e++];
      if ((b < 0x20 && b != '\t') || b == 0x7F) fail("relay: a control byte in a value");
    }
    if (e + 1 >= n || s[e] != '\r' || s[e + 1] != '\n') fail("relay: a line not ended by CRLF");
    i = e + 2;
  }
}

/* httpparse.relay(s, pos): checked against the parsers' end (req_nx,
** res_nx: 0 for no match) and against itself */
static void relay_one(const char *s, size_t n, lua_Integer pos, lua_Integer req_nx,
                      lua_Integer res_nx) {
  int top = lua_gettop(L);
  lua_pushlstring(L, s, n);
  lua_pushinteger(L, pos);
  int nres = call("relay", 2);
  if (lua_isnil(L, top + 1)) {
    if (req_nx || res_nx) fail("relay: no match where a parser matched");
    lua_settop(L, top);
    return;
  }
  if (nres != 3 || !lua_isinteger(L, top + 3)) fail("relay: results");
  lua_Integer nx = lua_tointeger(L, top + 3);
  if (nx < pos || (size_t)nx > n + 1) fail("relay: next out of range");
  if ((req_nx && nx != req_nx) || (res_nx && nx != res_nx)) fail("relay: another end than the parser's");
  size_t ln;
  const char *lines = lua_tolstring(L, top + 1, &ln);
  check_lines(lines, ln);
  lua_pushvalue(L, top + 1);
  call("relay", 1);
  size_t ln2;
  const char *again = lua_tolstring(L, -3, &ln2);
  if (!again || ln2 != ln || memcmp(again, lines, ln) != 0) fail("relay: its output relayed differs");
  lua_settop(L, top);
}

/* the set {host = true, ["x-a"] = true}, as a table (the string form is
** "host,x-a") */
static void push_host_xa(void) {
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "host");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "x-a");
}

/* httpparse.lines(s): accepted only where relay gives s back unchanged
** (same seen); relay(s, pos)'s lines always accepted; drop as a string
** "host,x-a" and as the table {host, x-a}: the same lines */
static void lines_one(const char *s, size_t n, lua_Integer pos) {
  int top = lua_gettop(L);
  lua_pushlstring(L, s, n);
  call("lines", 1);
  if (!lua_isnil(L, -1)) {
    lua_Integer seen = lua_tointeger(L, -1);
    lua_pushlstring(L, s, n);
    call("relay", 1);
    size_t ln;
    const char *lines = lua_tolstring(L, -3, &ln);
    if (!lines || ln != n || memcmp(lines, s, n) != 0) fail("lines: accepted what relay changes");
    if (lua_tointeger(L, -2) != seen) fail("lines: another seen than relay's");
  }
  lua_settop(L, top);
  lua_pushlstring(L, s, n);
  lua_pushinteger(L, pos);
  lua_pushliteral(L, "host,x-a");
  call("relay", 3);
  if (lua_isnil(L, top + 1)) {
    lua_settop(L, top);
    return;
  }
  lua_pushvalue(L, top + 1);
  call("lines", 1);
  if (lua_isnil(L, -1) || lua_tointeger(L, -1) != lua_tointeger(L, top + 2))
    fail("lines: refused relay's output");
  lua_pushlstring(L, s, n);
  lua_pushinteger(L, pos);
  push_host_xa();
  int base = lua_gettop(L) - 2;
  call("relay", 3);
  size_t a, b;
  const char *x = lua_tolstring(L, top + 1, &a), *y = lua_tolstring(L, base, &b);
  if (!y || a != b || memcmp(x, y, a) != 0) fail("relay: a string drop set differs from the table");
  lua_settop(L, top);
}

/* httpparse.response(s, pos, max, {host, x-a}): the same end as without
** the set (nx), and only names of it */
static void only_one(const char *s, size_t n, lua_Integer pos, lua_Integer max, lua_Integer nx) {
  int top = lua_gettop(L);
  lua_pushlstring(L, s, n);
  lua_pushinteger(L, pos);
  lua_pushinteger(L, max);
  push_host_xa();
  int nres = call("response", 4);
  lua_Integer onx = lua_isnil(L, top + 1) ? 0 : lua_tointeger(L, top + nres);
  if (onx != nx) fail("response with only: another end");
  if (nx) {
    lua_pushnil(L);
    while (lua_next(L, top + 5)) {
      const char *k = lua_tostring(L, -2);
      if (strcmp(k, "host") != 0 && strcmp(k, "x-a") != 0) fail("response with only: another name");
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
}

/* httpparse.block over { name = value } pairs cut from s at NULs: the
** lines hold one CRLF per pair, or nil with "name" / "value" */
static void block_one(const char *s, size_t n) {
  int top = lua_gettop(L);
  lua_newtable(L);
  size_t i = 0, pairs = 0;
  while (i < n && pairs < 16) {
    const char *k = s + i, *ke = memchr(k, 0, n - i);
    if (!ke) break;
    const char *v = ke + 1, *ve = memchr(v, 0, (size_t)(s + n - v));
    if (!ve) ve = s + n;
    lua_pushlstring(L, k, (size_t)(ke - k));
    if (lua_rawget(L, -2) == LUA_TNIL) pairs++;
    lua_pop(L, 1);
    lua_pushlstring(L, k, (size_t)(ke - k));
    lua_pushlstring(L, v, (size_t)(ve - v));
    lua_rawset(L, -3);
    i = (size_t)(ve - s) + 1;
  }
  call("block", 1);
  if (lua_isnil(L, top + 1)) {
    const char *what = lua_tostring(L, top + 2);
    if (!what || (strcmp(what, "name") != 0 && strcmp(what, "value") != 0)) fail("block: reason");
  } else {
    size_t ln, crlf = 0;
    const char *lines = lua_tolstring(L, top + 1, &ln);
    for (size_t j = 0; j + 1 < ln; j++) crlf += lines[j] == '\r' && lines[j + 1] == '\n';
    if (crlf != pairs) fail("block: not one line per field");
  }
  lua_settop(L, top);
}

static lhttp_fields kept;

/* kept_relay(head, drop): the head parsed keeping its spans (at most 300
** field lines: past relay's 256 too), then lhttp_relay_fields: lines,
** seen; nothing if the head does not parse (a C closure made with the
** parser's upvalues, as httpread's functions are) */
static int kept_relay(lua_State *Ls) {
  size_t n;
  const char *s = lua_tolstring(Ls, 1, &n);
  if (lhttp_response_head(Ls, s, n, 300, 0, &kept) != 0) return 0;
  lua_settop(Ls, 2);
  lhttp_relay_fields(Ls, s, &kept, 2);
  return 2;
}

/* the response head at s:sub(pos) (its end nx; 0: none): kept_relay's
** lines and seen are relay's (drop "date,x-a") */
static void kept_one(const char *s, size_t n, lua_Integer pos, lua_Integer nx) {
  if (!nx) return;
  int top = lua_gettop(L);
  lua_pushcclosure(L, kept_relay, lhttp_push_upvalues(L));
  lua_pushlstring(L, s + pos - 1, (size_t)(nx - pos));
  lua_pushliteral(L, "date,x-a");
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) fail(lua_tostring(L, -1));
  if (lua_isnil(L, top + 2)) fail("kept: the head did not parse");
  lua_pushlstring(L, s + pos - 1, (size_t)(nx - pos));
  lua_pushinteger(L, 1);
  lua_pushliteral(L, "date,x-a");
  call("relay", 3);
  size_t kn, rn;
  const char *k = lua_tolstring(L, top + 1, &kn), *r = lua_tolstring(L, top + 3, &rn);
  lua_Integer rseen = r ? lua_tointeger(L, top + 4) : 0;
  if ((k == NULL) != (r == NULL) || (k && (kn != rn || memcmp(k, r, kn) != 0)))
    fail("kept: other lines than relay's");
  if (lua_tointeger(L, top + 2) != rseen) fail("kept: other seen bits than relay's");
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
  lua_Integer req_nx = one("request", 6, s, n, pos, max);
  lua_Integer res_nx = one("response", 5, s, n, pos, max);
  relay_one(s, n, pos, req_nx, res_nx);
  only_one(s, n, pos, max, res_nx);
  lines_one(s, n, pos);
  block_one(s, n);
  kept_one(s, n, pos, res_nx);
  /* free this input's garbage now: libFuzzer's leak check runs after an
  ** input that mallocs more than it frees, and that scan is slow */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
