/*
** lhttpread.c — goluarun.httpread: the client's answer head read and
** parsed in one conn operation (see lhttpread.h).
*/
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "conn.h"
#include "errstr.h"
#include "lhttp.h"
#include "lhttpread.h"

/* stack slots of readresponse: 1 conn, 2 max_header_bytes, 3 max_headers,
** 4 only (table or nil), 5 HEAD request (boolean), 6 body cap, 7 relay
** (a drop set: string or table; nil: no relayed lines), 8 the headers
** table's metatable (or nil), 9 answer (a proxy's: see rr_answer) */
#define RR_TOP 9
#define RR_GOT 1 /* s->arg: bytes of the answer arrived (a 1xx consumed) */

/* where the first empty line ends the head: the offset after it, *lf the
** offset of the LF before it; 0: not buffered yet (a search starts again
** where the last stopped, rb->scan) */
static size_t head_end(conn_stream *cs, const char *b, size_t n, size_t *lf) {
  size_t from = cs->rb->scan;
  for (;;) {
    const char *p = memchr(b + from, '\n', n - from);
    if (!p) break;
    size_t i = (size_t)(p - b);
    if (i + 1 < n && b[i + 1] == '\n') {
      *lf = i;
      return i + 2;
    }
    if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n') {
      *lf = i;
      return i + 3;
    }
    if (i + 2 >= n) { /* its end may come: search from this LF again */
      from = i;
      break;
    }
    from = i + 1;
  }
  cs->rb->scan = from;
  return 0;
}

static int rr_err(lua_State *L, conn_side *s, conn_stream *cs, const char *msg) {
  lua_settop(L, RR_TOP);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushboolean(L, (s->arg & RR_GOT) || conn_buffered(cs) > 0);
  return 3;
}

/* a single string field of the headers table h (at -1): its bytes, NULL
** if absent; *list: the field was repeated (a table) */
static const char *rr_field(lua_State *L, const char *name, size_t *n, bool *list) {
  int t = lua_getfield(L, -1, name);
  const char *v = t == LUA_TSTRING ? lua_tolstring(L, -1, n) : NULL;
  if (t == LUA_TTABLE) *list = true;
  lua_pop(L, 1); /* (the table keeps the string alive) */
  return v;
}

/* ends with "chunked" (any case) before trailing whitespace */
static bool ends_chunked(const char *v, size_t n) {
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n')) n--;
  return n >= 7 && lhttp_same_ci(v + n - 7, "chunked", 7);
}

typedef struct rr_frame {
  const char *mode; /* NULL: a repeated framing field, Lua decides */
  lua_Integer left;
  bool close;
} rr_frame;

/* the framing of an answer (headers table on the top): false with a bad
** Content-Length */
static bool rr_framing(lua_State *L, int status, bool v10, rr_frame *f) {
  bool list = false;
  size_t cn = 0, tn = 0, ln = 0;
  const char *connh = rr_field(L, "connection", &cn, &list);
  const char *te = rr_field(L, "transfer-encoding", &tn, &list);
  const char *cl = rr_field(L, "content-length", &ln, &list);
  f->mode = NULL;
  f->left = 0;
  f->close = false;
  if (list) return true;
  f->close = v10 ? !(connh && lhttp_has_token(connh, cn, "keep-alive"))
                 : connh != NULL && lhttp_has_token(connh, cn, "close");
  if (lua_toboolean(L, 5) || status == 204 || status == 304 || status < 200) {
    f->mode = "none";
  } else if (te) {
    f->mode = ends_chunked(te, tn) ? "chunked" : "close";
    if (!ends_chunked(te, tn)) f->close = true;
  } else if (cl) {
    if (ln == 0 || ln > 15) return false;
    for (size_t i = 0; i < ln; i++) {
      if (!(cl[i] >= '0' && cl[i] <= '9')) return false;
      f->left = f->left * 10 + (cl[i] - '0');
    }
    f->mode = f->left == 0 ? "none" : "length";
  } else {
    f->mode = "close";
    f->close = true;
  }
  return true;
}

/* the head's field lines past the limit, or malformed: which */
static const char *rr_bad_fields(const char *b, size_t lf, lua_Integer max) {
  lua_Integer nl = 0;
  for (size_t i = 0; i <= lf; i++) nl += b[i] == '\n';
  return nl > max ? "headers too large" : "bad response: malformed header";
}

/* pushes the results of a parsed head b[0 .. end) (status line and fields
** on the stack; keep: its field lines' spans) and consumes it, with a
** Content-Length body already here up to the cap; the relayed lines made
** from keep (httpparse.relay's, the head not scanned again) */
static int rr_done(lua_State *L, conn_side *s, conn_stream *cs, const char *b, size_t end,
                   int base, const lhttp_fields *keep) {
  int status = (int)lua_tointeger(L, base + 3);
  bool v10 = lua_tostring(L, base + 2)[0] == '0';
  rr_frame f;
  if (!rr_framing(L, status, v10, &f)) return rr_err(L, s, cs, "bad response: bad Content-Length");
  if (!lua_isnil(L, 8)) { /* (after rr_framing: its reads are raw then) */
    lua_pushvalue(L, 8);
    lua_setmetatable(L, -2);
  }
  /* status, reason, minor, headers, head, mode, left, close, body */
  lua_rotate(L, base + 1, -2); /* major minor status reason h -> status reason h major minor */
  lua_rotate(L, base + 3, -1); /* -> status reason major minor h */
  lua_remove(L, base + 3);     /* -> status reason minor h */
  lua_pushlstring(L, b, end);
  if (f.mode) lua_pushstring(L, f.mode);
  else lua_pushnil(L);
  lua_pushinteger(L, f.left);
  lua_pushboolean(L, f.close);
  size_t n = conn_buffered(cs);
  bool whole = f.mode && f.mode[0] == 'l' && f.left <= lua_tointeger(L, 6) &&
               n - end >= (size_t)f.left;
  if (whole) lua_pushlstring(L, b + end, (size_t)f.left);
  else lua_pushnil(L);
  if (keep) lhttp_relay_fields(L, b, keep, 7);
  conn_consume(cs, end + (whole ? (size_t)f.left : 0));
  return keep ? 11 : 9;
}

/* the framing of a head from its field lines' spans: false where the
** table's is needed (a repeated framing field, a transfer coding, no
** Content-Length or a bad one); else *close and the body's *len */
static bool span_framing(const char *b, const lhttp_fields *k, bool v10, bool *close,
                         lua_Integer *len) {
  const lhttp_span *connh = NULL, *cl = NULL;
  for (int i = 0; i < k->n; i++) {
    const lhttp_span *x = &k->f[i];
    const char *nm = b + x->n0;
    if (x->nlen == 17 && lhttp_same_ci(nm, "transfer-encoding", 17)) return false;
    bool is_cl = x->nlen == 14 && lhttp_same_ci(nm, "content-length", 14);
    bool is_conn = x->nlen == 10 && lhttp_same_ci(nm, "connection", 10);
    if ((is_cl && cl) || (is_conn && connh)) return false;
    if (is_cl) cl = x;
    if (is_conn) connh = x;
  }
  if (!cl || cl->vlen == 0 || cl->vlen > 15) return false;
  *len = 0;
  for (size_t i = 0; i < cl->vlen; i++) {
    char d = b[cl->v0 + i];
    if (d < '0' || d > '9') return false;
    *len = *len * 10 + (d - '0');
  }
  const char *v = connh ? b + connh->v0 : NULL;
  if (v10) *close = !(v && lhttp_has_token(v, connh->vlen, "keep-alive"));
  else *close = v && lhttp_has_token(v, connh->vlen, "close");
  return true;
}

/* readresponse with `answer` true (a proxy whose answer is the common one):
** a 200..599 answer other than 204 and 304 to a request other than HEAD,
** with a Content-Length body of up to the cap here whole, gives status,
** six nils, close, three nils and the answer after its status line and
** Date (lhttp_relay_answer: no headers table, no string but that one),
** the head and body consumed; any other: CONN_PENDING (the table's way) */
static int rr_answer(lua_State *L, conn_stream *cs, const char *b, size_t end,
                     lhttp_fields *keep) {
  lhttp_status st;
  bool close;
  lua_Integer len;
  if (lhttp_response_spans(b, end, lua_tointeger(L, 3), &st, keep) != 0 || st.major != '1' ||
      st.code < 200 || st.code > 599 || st.code == 204 || st.code == 304 ||
      lua_toboolean(L, 5) || !span_framing(b, keep, st.minor == '0', &close, &len) ||
      len > lua_tointeger(L, 6) || conn_buffered(cs) - end < (size_t)len)
    return CONN_PENDING;
  lua_pushinteger(L, st.code);
  for (int i = 0; i < 6; i++) lua_pushnil(L);
  lua_pushboolean(L, close);
  for (int i = 0; i < 3; i++) lua_pushnil(L);
  lhttp_relay_answer(L, b, keep, 7, b + end, (size_t)len);
  conn_consume(cs, end + (size_t)len);
  return 12;
}

/* one head from the buffer: results, or CONN_PENDING; a 1xx is skipped */
static int rr_ready(lua_State *L, conn *c, conn_side *s) {
  conn_stream *cs = (conn_stream *)c;
  int base = lua_gettop(L); /* (a wake-up may leave values above RR_TOP) */
  lhttp_fields keep; /* (the spans: only when relayed lines are asked) */
  lhttp_fields *keepp = lua_isnil(L, 7) ? NULL : &keep;
  for (;;) {
    size_t n, lf;
    const char *b = conn_data(cs, &n);
    if (n == 0) return CONN_PENDING;
    size_t end = head_end(cs, b, n, &lf);
    if (end == 0) {
      if (n > (size_t)lua_tointeger(L, 2)) return rr_err(L, s, cs, "headers too large");
      if (n >= 5 && memcmp(b, "HTTP/", 5) != 0)
        return rr_err(L, s, cs, "bad response: malformed status line");
      return CONN_PENDING;
    }
    if (lf > (size_t)lua_tointeger(L, 2)) return rr_err(L, s, cs, "headers too large");
    if (keepp && lua_toboolean(L, 9)) {
      int r = rr_answer(L, cs, b, end, keepp);
      if (r != CONN_PENDING) return r;
    }
    int bad = lhttp_response_head(L, b, end, lua_tointeger(L, 3), lua_isnil(L, 4) ? 0 : 4, keepp);
    if (bad == LHTTP_BAD_STATUS) return rr_err(L, s, cs, "bad response: malformed status line");
    if (bad) return rr_err(L, s, cs, rr_bad_fields(b, lf, lua_tointeger(L, 3)));
    const char *major = lua_tostring(L, base + 1);
    if (major[0] != '1') {
      char msg[32] = "bad response: HTTP/x.y";
      msg[19] = major[0];
      msg[21] = lua_tostring(L, base + 2)[0];
      return rr_err(L, s, cs, msg);
    }
    int status = (int)lua_tointeger(L, base + 3);
    if (status >= 200 || status == 101) return rr_done(L, s, cs, b, end, base, keepp);
    lua_settop(L, base); /* 1xx: skipped */
    conn_consume(cs, end);
    s->arg |= RR_GOT;
  }
}

static int rr_try(lua_State *L, conn *c, conn_side *s) {
  conn_stream *cs = (conn_stream *)c;
  ssize_t r = conn_fill(L, cs);
  if (r > 0) return CONN_AGAIN;
  if (r == 0) {
    bool got = (s->arg & RR_GOT) || conn_buffered(cs) > 0;
    return rr_err(L, s, cs, got ? "bad response: truncated head" : ERRSTR_EOF);
  }
  if (r == -ENOMEM) return rr_err(L, s, cs, ERRSTR_NOMEM);
  return (int)r;
}

static int rr_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  conn_stream *cs = (conn_stream *)c;
  conn_side none = {.arg = 0};
  return rr_err(L, started ? s : &none, cs, msg);
}

static const conn_op rr_op = {CONN_DIR_R, GLR_READ, rr_ready, rr_try, rr_fail, NULL};

static int hp_readresponse(lua_State *L) {
  conn_stream_check(L, 1);
  luaL_checkinteger(L, 2);
  luaL_checkinteger(L, 3);
  if (!lua_isnoneornil(L, 4) && lua_type(L, 4) != LUA_TSTRING) luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checkinteger(L, 6);
  if (!lua_isnoneornil(L, 7) && lua_type(L, 7) != LUA_TSTRING) luaL_checktype(L, 7, LUA_TTABLE);
  if (!lua_isnoneornil(L, 8)) luaL_checktype(L, 8, LUA_TTABLE);
  lua_settop(L, RR_TOP);
  return conn_op_run(L, &rr_op, 0);
}

/* ---------- httpread.checkreq ---------- */

/* the request fields checkreq reads: its upvalues, in this order (a key
** pushed from an upvalue is looked up without interning a C string) */
static const char *const cr_keys[] = {"url",    "method", "body",   "timeout",
                                      "fields", "relay",  "headers", "follow",
                                      "max_header_bytes", "max_headers", "max_body"};
enum { CR_URL = 1, CR_METHOD, CR_BODY, CR_TIMEOUT, CR_FIELDS, CR_RELAY, CR_HEADERS,
       CR_FOLLOW, CR_MAX_HEADER_BYTES, CR_MAX_HEADERS, CR_MAX_BODY, CR_NKEYS = CR_MAX_BODY };

/* pushes req[key] (req at slot 1, through __index as Lua reads it): its type */
static int cr_get(lua_State *L, int key) {
  lua_pushvalue(L, lua_upvalueindex(key));
  return lua_gettable(L, 1);
}

/* raises msg where http.request was called (luaL_where's level 2: 0 is
** checkreq, 1 http.request), as the Lua check's error(msg, 3) did */
static int cr_raise(lua_State *L, const char *msg) {
  luaL_where(L, 2);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* req.method on the top: valid, or "GET" for nil (replacing it) */
static void cr_method(lua_State *L, int t) {
  size_t n = 0;
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "GET");
    return;
  }
  const char *m = t == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
  if (!m || !lhttp_is_token(m, n)) cr_raise(L, "http.request: req.method must be a token");
}

/* req.follow: nil -> 0, else a non-negative integer */
static lua_Integer cr_follow(lua_State *L) {
  int t = cr_get(L, CR_FOLLOW);
  lua_Integer f = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
  if (t == LUA_TNIL) f = 0;
  if (f < 0) cr_raise(L, "http.request: req.follow must be a non-negative integer");
  lua_pop(L, 1);
  return f;
}

/* whether req[k] is not nil (popped) */
static bool cr_given(lua_State *L, int key) {
  bool given = cr_get(L, key) != LUA_TNIL;
  lua_pop(L, 1);
  return given;
}

/* the types of req's body, timeout, fields and headers */
static void cr_types(lua_State *L) {
  int t = cr_get(L, CR_BODY);
  if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TFUNCTION)
    cr_raise(L, "http.request: req.body must be a string or a function");
  t = cr_get(L, CR_TIMEOUT);
  if (t != LUA_TNIL && !(t == LUA_TNUMBER && lua_tonumber(L, -1) > 0))
    cr_raise(L, "http.request: req.timeout must be a positive number");
  int tf = cr_get(L, CR_FIELDS);
  if (tf != LUA_TNIL && tf != LUA_TSTRING) cr_raise(L, "http.request: req.fields must be a string");
  t = cr_get(L, CR_RELAY);
  if (t != LUA_TNIL && t != LUA_TSTRING && t != LUA_TTABLE)
    cr_raise(L, "http.request: req.relay must be a string or a table");
  if (tf == LUA_TNIL) {
    t = cr_get(L, CR_HEADERS);
    if (t != LUA_TNIL && t != LUA_TTABLE) cr_raise(L, "http.request: req.headers must be a table");
  }
  lua_settop(L, 3);
}

/* httpread.checkreq(req) -> method, follow, limits: one C call for the
** per-call checks of http.request (the fields read through __index, as
** the Lua reads them); limits: a max_* field is given */
static int hp_checkreq(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE) return cr_raise(L, "http.request: req must be a table");
  lua_settop(L, 1);
  if (cr_get(L, CR_URL) != LUA_TSTRING)
    return cr_raise(L, "http.request: req.url must be a string");
  cr_method(L, cr_get(L, CR_METHOD)); /* 3 */
  cr_types(L);
  lua_pushinteger(L, cr_follow(L));
  lua_pushboolean(L, cr_given(L, CR_MAX_HEADER_BYTES) || cr_given(L, CR_MAX_HEADERS) ||
                         cr_given(L, CR_MAX_BODY));
  return 3;
}

int luaopen_httpread(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"readresponse", hp_readresponse},
      {NULL, NULL},
  };
  luaL_newlibtable(L, fns);
  luaL_setfuncs(L, fns, lhttp_push_upvalues(L)); /* (the parser's interned strings) */
  for (int i = 0; i < CR_NKEYS; i++) lua_pushstring(L, cr_keys[i]);
  lua_pushcclosure(L, hp_checkreq, CR_NKEYS);
  lua_setfield(L, -2, "checkreq");
  return 1;
}
