/* vcopy.c — see vcopy.h. Format: a count, then tagged values; a table is
** its pair count then key, value pairs; a shared channel its schan pointer
** (the buffer holds a ref on it). */
#include "vcopy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../runtime/schan.h"
#include "bindings.h"

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TAB, T_CONN, T_SCHAN };
#define MAX_DEPTH 100

typedef struct reader {
  const char *p, *end;
} reader;

static void get(reader *r, void *dst, size_t n) {
  memcpy(dst, r->p, n);
  r->p += n;
}

static size_t get_size(reader *r) {
  size_t n;
  get(r, &n, sizeof n);
  return n;
}

/* skip — steps over one value, calling fn on each shared channel in it */
static void skip(reader *r, void (*fn)(schan *)) {
  unsigned char t = (unsigned char)*r->p++;
  switch (t) {
    case T_NIL: case T_FALSE: case T_TRUE: return;
    case T_INT: r->p += sizeof(lua_Integer); return;
    case T_FLT: r->p += sizeof(lua_Number); return;
    case T_STR: r->p += get_size(r); return;
    case T_CONN: r->p += 2 * sizeof(int); r->p += get_size(r); return;
    case T_SCHAN: { schan *c; get(r, &c, sizeof c); fn(c); return; }
    default: { /* T_TAB */
      size_t n = get_size(r);
      for (size_t i = 0; i < 2 * n; i++) skip(r, fn);
    }
  }
}

static void walk_chans(const vbuf *b, void (*fn)(schan *)) {
  reader r = {b->p, b->p + b->len};
  size_t n = get_size(&r);
  for (size_t i = 0; i < n; i++) skip(&r, fn);
}

void vbuf_free(vbuf *b) {
  if (b->refs) walk_chans(b, schan_release);
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->refs = false;
}

static void put(lua_State *L, vbuf *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 64;
    while (nc < b->len + n) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
      vbuf_free(b);
      luaL_error(L, "not enough memory");
    }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_tag(lua_State *L, vbuf *b, int t) {
  unsigned char c = (unsigned char)t;
  put(L, b, &c, 1);
}

static void put_size(lua_State *L, vbuf *b, size_t n) { put(L, b, &n, sizeof n); }

typedef struct enc {
  vbuf *b;
  const char *what;
  int seen;       /* stack index: tables already encoded */
  bool commit;    /* conns: move them (second pass) or only check */
  bool saw_conn, saw_schan;
  int flags;      /* VC_* */
} enc;

static void encode(lua_State *L, int idx, enc *e, int depth);

static void encode_table(lua_State *L, int idx, enc *e, int depth) {
  vbuf *b = e->b;
  const char *what = e->what;
  int seen = e->seen;
  if (depth > MAX_DEPTH || lua_getmetatable(L, idx)) {
    vbuf_free(b);
    luaL_error(L, "%s: only plain tables (no metatables, depth <= %d) can be copied",
               what, MAX_DEPTH);
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    vbuf_free(b);
    luaL_error(L, "%s: a table that contains itself (or is shared) cannot be copied", what);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    n++;
    lua_pop(L, 1);
  }
  put_tag(L, b, T_TAB);
  put_size(L, b, n);
  if (!lua_checkstack(L, 4)) {
    vbuf_free(b);
    luaL_error(L, "%s: table too deep", what);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    encode(L, top - 1, e, depth + 1);
    encode(L, top, e, depth + 1);
    lua_pop(L, 1);
  }
}

/* a conn moves: fd, kind and its buffered bytes */
static void encode_conn(lua_State *L, int idx, enc *e) {
  int fd, kind;
  const char *why = net_conn_detach(L, idx, e->commit, &fd, &kind);
  if (why) {
    vbuf_free(e->b);
    luaL_error(L, "%s: %s", e->what, why);
  }
  size_t len;
  const char *data = lua_tolstring(L, -1, &len);
  put_tag(L, e->b, T_CONN);
  put(L, e->b, &fd, sizeof fd);
  put(L, e->b, &kind, sizeof kind);
  put_size(L, e->b, len);
  put(L, e->b, data, len);
  lua_pop(L, 1);
  e->saw_conn = true;
}

/* userdata: a shared channel, or a conn that moves; false if neither */
static bool encode_udata(lua_State *L, int idx, enc *e) {
  schan *c = lschan_test(L, idx);
  if (c) {
    put_tag(L, e->b, T_SCHAN);
    put(L, e->b, &c, sizeof c);
    e->saw_schan = true;
    return true;
  }
  if (!net_conn_is(L, idx)) return false;
  if (e->flags & VC_NOCONN) {
    vbuf_free(e->b);
    luaL_error(L, "%s: connections cannot be sent on a shared channel", e->what);
  }
  encode_conn(L, idx, e);
  return true;
}

static void encode(lua_State *L, int idx, enc *e, int depth) {
  vbuf *b = e->b;
  const char *what = e->what;
  if (lua_type(L, idx) == LUA_TUSERDATA && encode_udata(L, idx, e)) return;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_tag(L, b, T_NIL); return;
    case LUA_TBOOLEAN: put_tag(L, b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        put_tag(L, b, T_INT);
        put(L, b, &i, sizeof i);
      } else {
        lua_Number f = lua_tonumber(L, idx);
        put_tag(L, b, T_FLT);
        put(L, b, &f, sizeof f);
      }
      return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_tag(L, b, T_STR);
      put_size(L, b, len);
      put(L, b, s, len);
      return;
    }
    case LUA_TTABLE: encode_table(L, idx, e, depth); return;
    default:
      vbuf_free(b);
      luaL_error(L, "%s: a %s value cannot be copied to another VM", what,
                 luaL_typename(L, idx));
  }
}

static void encode_all(lua_State *L, int first, int n, enc *e) {
  lua_newtable(L); /* tables already seen (cycle check) */
  e->seen = lua_gettop(L);
  put_size(L, e->b, (size_t)n);
  for (int i = 0; i < n; i++) encode(L, first + i, e, 0);
  lua_remove(L, e->seen);
}

/* Values that contain connections are encoded twice: the first pass only
** checks (it may raise with nothing moved), the second moves them. */
void vcopy_encode_ex(lua_State *L, int first, int n, vbuf *b, const char *what,
                     int flags) {
  enc e = {b, what, 0, false, false, false, flags};
  encode_all(L, first, n, &e);
  if (e.saw_conn) {
    vbuf_free(b);
    e.commit = true;
    e.saw_schan = false;
    encode_all(L, first, n, &e);
  }
  if (e.saw_schan) { /* the channels are alive: L's values name them */
    walk_chans(b, schan_retain);
    b->refs = true;
  }
}

void vcopy_encode(lua_State *L, int first, int n, vbuf *b, const char *what) {
  vcopy_encode_ex(L, first, n, b, what, 0);
}

static void decode(lua_State *L, reader *r) {
  luaL_checkstack(L, 3, "value too deep");
  unsigned char t = (unsigned char)*r->p++;
  switch (t) {
    case T_NIL: lua_pushnil(L); return;
    case T_FALSE: lua_pushboolean(L, 0); return;
    case T_TRUE: lua_pushboolean(L, 1); return;
    case T_INT: { lua_Integer i; get(r, &i, sizeof i); lua_pushinteger(L, i); return; }
    case T_FLT: { lua_Number f; get(r, &f, sizeof f); lua_pushnumber(L, f); return; }
    case T_STR: {
      size_t n = get_size(r);
      lua_pushlstring(L, r->p, n);
      r->p += n;
      return;
    }
    case T_SCHAN: {
      schan *c;
      get(r, &c, sizeof c);
      lschan_push(L, c);
      return;
    }
    case T_CONN: {
      int fd, kind;
      get(r, &fd, sizeof fd);
      get(r, &kind, sizeof kind);
      size_t n = get_size(r);
      net_conn_push_buffered(L, fd, kind, r->p, n);
      r->p += n;
      return;
    }
    default: { /* T_TAB */
      size_t n = get_size(r);
      lua_createtable(L, 0, (int)(n < 1024 ? n : 1024));
      for (size_t i = 0; i < n; i++) {
        decode(L, r);
        decode(L, r);
        lua_rawset(L, -3);
      }
    }
  }
}

int vcopy_decode(lua_State *L, const vbuf *b) {
  reader r = {b->p, b->p + b->len};
  size_t n = get_size(&r);
  luaL_checkstack(L, (int)n + 2, "too many values");
  for (size_t i = 0; i < n; i++) decode(L, &r);
  return (int)n;
}
