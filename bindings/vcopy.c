/* vcopy.c — see vcopy.h. Format: a count, then tagged values; a table is
** its pair count then key, value pairs; a hooked userdata its class hook's
** address then the payload the hook wrote. */
#include "vcopy.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TAB, T_UDATA };
static const char HOOK_KEY = 'h'; /* metatable field: the class's vcopy_class */
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

static const vcopy_class *get_class(reader *r) {
  const vcopy_class *cls;
  get(r, &cls, sizeof cls);
  return cls;
}

/* skip — steps over one value, walking each payload with delta */
static void skip(reader *r, int delta) {
  unsigned char t = (unsigned char)*r->p++;
  switch (t) {
    case T_NIL: case T_FALSE: case T_TRUE: return;
    case T_INT: r->p += sizeof(lua_Integer); return;
    case T_FLT: r->p += sizeof(lua_Number); return;
    case T_STR: r->p += get_size(r); return;
    case T_UDATA: get_class(r)->walk(&r->p, delta); return;
    default: { /* T_TAB */
      size_t n = get_size(r);
      for (size_t i = 0; i < 2 * n; i++) skip(r, delta);
    }
  }
}

static void walk_refs(const vbuf *b, int delta) {
  reader r = {b->p, b->p + b->len};
  size_t n = get_size(&r);
  for (size_t i = 0; i < n; i++) skip(&r, delta);
}

void vbuf_free(vbuf *b) {
  if (b->refs) walk_refs(b, -1);
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->refs = false;
}

void vbuf_put(lua_State *L, vbuf *b, const void *src, size_t n) {
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
  vbuf_put(L, b, &c, 1);
}

static void put_size(lua_State *L, vbuf *b, size_t n) { vbuf_put(L, b, &n, sizeof n); }

typedef struct enc {
  vbuf *b;
  const char *what;
  int seen;       /* stack index: tables already encoded */
  bool commit;    /* values that move: move them (second pass) or only check */
  bool saw_move, saw_refs;
  int flags;      /* VC_* */
} enc;

static void encode(lua_State *L, int idx, enc *e, int depth);

/* once — mark the value at idx as encoded; raise if it already was (the
** check pass sees it, so nothing has moved yet when it raises) */
static void once(lua_State *L, int idx, enc *e, const char *why) {
  lua_pushvalue(L, idx);
  if (lua_rawget(L, e->seen) != LUA_TNIL) {
    vbuf_free(e->b);
    luaL_error(L, "%s: a %s %s", e->what, luaL_typename(L, idx), why);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, e->seen);
}

static void encode_table(lua_State *L, int idx, enc *e, int depth) {
  vbuf *b = e->b;
  const char *what = e->what;
  if (depth > MAX_DEPTH || lua_getmetatable(L, idx)) {
    vbuf_free(b);
    luaL_error(L, "%s: only plain tables (no metatables, depth <= %d) can be copied",
               what, MAX_DEPTH);
  }
  once(L, idx, e, "that contains itself (or is shared) cannot be copied");
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

void vcopy_sethook(lua_State *L, int mtidx, const vcopy_class *cls) {
  mtidx = lua_absindex(L, mtidx);
  lua_pushlightuserdata(L, (void *)cls);
  lua_rawsetp(L, mtidx, &HOOK_KEY);
}

/* class_of — the vcopy hook of the userdata at idx, or NULL */
static const vcopy_class *class_of(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, -1, &HOOK_KEY);
  const vcopy_class *cls = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return cls;
}

/* userdata with a class hook: its tag, hook and payload; false if none */
static bool encode_udata(lua_State *L, int idx, enc *e) {
  const vcopy_class *cls = class_of(L, idx);
  if (!cls) return false;
  if (cls->moves && (e->flags & VC_NOCONN)) {
    vbuf_free(e->b);
    luaL_error(L, "%s: %s cannot be sent on a shared channel", e->what, cls->plural);
  }
  if (cls->moves) once(L, idx, e, "passed twice cannot be moved");
  put_tag(L, e->b, T_UDATA);
  vbuf_put(L, e->b, &cls, sizeof cls);
  const char *why = cls->encode(L, idx, e->b, e->commit || !cls->moves);
  if (why) {
    vbuf_free(e->b);
    luaL_error(L, "%s: %s", e->what, why);
  }
  e->saw_move |= cls->moves;
  e->saw_refs |= cls->refs;
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
        vbuf_put(L, b, &i, sizeof i);
      } else {
        lua_Number f = lua_tonumber(L, idx);
        put_tag(L, b, T_FLT);
        vbuf_put(L, b, &f, sizeof f);
      }
      return;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_tag(L, b, T_STR);
      put_size(L, b, len);
      vbuf_put(L, b, s, len);
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
  /* the slots used before encode_table's own check (seen, once's two):
  ** not the caller's spare ones (a decode leaves just 2 above its values) */
  if (!lua_checkstack(L, 4)) {
    vbuf_free(e->b);
    luaL_error(L, "%s: too many values", e->what);
  }
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
  if (e.saw_move) {
    vbuf_free(b);
    e.commit = true;
    e.saw_refs = false;
    encode_all(L, first, n, &e);
  }
  if (e.saw_refs) { /* the referents are alive: L's values name them */
    walk_refs(b, +1);
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
    case T_UDATA: {
      const vcopy_class *cls = get_class(r);
      cls->decode(L, &r->p);
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

/* ---------- checking reader (vcopy_validate): every read is bounded ---------- */

static bool can_read(const reader *r, size_t n) { return (size_t)(r->end - r->p) >= n; }

static const char *check_value(reader *r, int depth, bool key) {
  if (!can_read(r, 1)) return "truncated value";
  unsigned char t = (unsigned char)*r->p++;
  switch (t) {
    case T_NIL: return key ? "nil table key" : NULL;
    case T_FALSE: case T_TRUE: return NULL;
    case T_INT:
      if (!can_read(r, sizeof(lua_Integer))) return "truncated integer";
      r->p += sizeof(lua_Integer);
      return NULL;
    case T_FLT: {
      lua_Number f;
      if (!can_read(r, sizeof f)) return "truncated float";
      get(r, &f, sizeof f);
      return key && isnan(f) ? "NaN table key" : NULL;
    }
    case T_STR: {
      if (!can_read(r, sizeof(size_t))) return "truncated string length";
      size_t n = get_size(r);
      if (!can_read(r, n)) return "string longer than the buffer";
      r->p += n;
      return NULL;
    }
    case T_TAB: {
      if (depth > MAX_DEPTH) return "tables nested too deep";
      if (!can_read(r, sizeof(size_t))) return "truncated table size";
      size_t n = get_size(r);
      if (n > (size_t)(r->end - r->p) / 2) return "table larger than the buffer";
      for (size_t i = 0; i < n; i++) {
        const char *why = check_value(r, depth + 1, true);
        if (!why) why = check_value(r, depth + 1, false);
        if (why) return why;
      }
      return NULL;
    }
    case T_UDATA: return "userdata (only this process's own buffers carry them)";
    default: return "bad tag";
  }
}

const char *vcopy_validate(const char *p, size_t len) {
  reader r = {p, p + len};
  if (!can_read(&r, sizeof(size_t))) return "truncated value count";
  size_t n = get_size(&r);
  if (n > len || n > INT_MAX - 2) return "value count larger than the buffer";
  for (size_t i = 0; i < n; i++) {
    const char *why = check_value(&r, 0, false);
    if (why) return why;
  }
  return r.p == r.end ? NULL : "trailing bytes";
}

int vcopy_decode(lua_State *L, const vbuf *b) {
  reader r = {b->p, b->p + b->len};
  size_t n = get_size(&r);
  luaL_checkstack(L, (int)n + 2, "too many values");
  for (size_t i = 0; i < n; i++) decode(L, &r);
  return (int)n;
}
