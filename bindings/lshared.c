/*
** lshared.c — go.shared(name): shared dictionaries (runtime/shdict.h) as
** userdata handles (metatable goluarun.shared) holding the dict pointer.
**
** Dicts live in the process-wide registry and are never freed while VMs
** run, so a handle needs no __gc. Each VM caches its handles by name in a
** weak table (the upvalue of go.shared): the same name gives the same
** userdata in a VM (handles compare equal) and the same dict everywhere.
** No Lua call happens while a dict is locked: values are converted before
** and after the shdict_* call. Everything here runs on the M holding the
** VM's P.
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/shdict.h"
#include "classes.h"
#include "errstr.h"
#include "lshared.h"

#define SHARED_MT "goluarun.shared"
static const char SHARED_KEY = 's';

#define GET_STACKBUF 256 /* strings up to this size are read without allocating */

/* the dict of the handle at 1; a method's upvalue 1 is the metatable
** (class_define), so the common case is one pointer compare */
static shdict *check_dict(lua_State *L) {
  shdict **h = class_method(L, 1, &SHARED_KEY, SHARED_MT);
  return *h;
}

/* check_key — a string, or a number converted as Lua does */
static const char *check_key(lua_State *L, int idx, size_t *len) {
  return luaL_checklstring(L, idx, len);
}

static void check_value(lua_State *L, int idx, shd_value *v) {
  switch (lua_type(L, idx)) {
  case LUA_TNONE:
  case LUA_TNIL: v->type = SHD_NIL; break;
  case LUA_TBOOLEAN:
    v->type = SHD_BOOL;
    v->u.b = lua_toboolean(L, idx);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      v->type = SHD_INT;
      v->u.i = (int64_t)lua_tointeger(L, idx);
    } else {
      v->type = SHD_FLOAT;
      v->u.f = (double)lua_tonumber(L, idx);
    }
    break;
  case LUA_TSTRING:
    v->type = SHD_STR;
    v->u.s.p = lua_tolstring(L, idx, &v->u.s.len);
    break;
  default:
    luaL_argerror(L, idx, "shared dict values must be nil, booleans, numbers or strings");
  }
}

/* check_number — a number (integer or float kept); strings are refused */
static void check_number(lua_State *L, int idx, shd_value *v) {
  if (lua_type(L, idx) != LUA_TNUMBER) luaL_typeerror(L, idx, "number");
  check_value(L, idx, v);
}

/* check_ttl — seconds (nil/0 = none) to an absolute expiry, 0 = none */
static int64_t check_ttl(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  double s = (double)luaL_checknumber(L, idx);
  if (isnan(s)) luaL_argerror(L, idx, "ttl is NaN");
  if (s < 0) luaL_argerror(L, idx, "ttl is negative");
  return s > 0 ? deadline_from_seconds(s) : 0;
}

static void push_value(lua_State *L, const shd_value *v) {
  switch (v->type) {
  case SHD_BOOL: lua_pushboolean(L, v->u.b); break;
  case SHD_INT: lua_pushinteger(L, (lua_Integer)v->u.i); break;
  case SHD_FLOAT: lua_pushnumber(L, (lua_Number)v->u.f); break;
  case SHD_STR: lua_pushlstring(L, v->u.s.p, v->u.s.len); break;
  default: lua_pushnil(L);
  }
}

static int fail(lua_State *L, const char *err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

static int no_memory(lua_State *L) { return luaL_error(L, ERRSTR_NOMEM); }

/* ---------- methods ---------- */

/* d:get(k) — a long string is copied into a userdata sized from the first
** attempt (retried if it grew meanwhile). */
static int sh_get(lua_State *L) {
  shdict *d = check_dict(L);
  size_t klen;
  const char *k = check_key(L, 2, &klen);
  char stackbuf[GET_STACKBUF];
  char *buf = stackbuf;
  size_t cap = sizeof stackbuf;
  shd_value v;
  int rc;
  while ((rc = shdict_get(d, k, klen, &v, buf, cap)) == -ENOBUFS) {
    lua_settop(L, 2);
    cap = v.u.s.len;
    buf = lua_newuserdatauv(L, cap, 0);
  }
  if (rc == -ENOENT) v.type = SHD_NIL;
  push_value(L, &v);
  return 1;
}

/* the (k, v [, ttl]) arguments of set and add */
typedef struct kv_args {
  shdict *d;
  const char *k;
  size_t klen;
  shd_value v;
  int64_t expire;
} kv_args;

static void check_kv(lua_State *L, kv_args *a) {
  a->d = check_dict(L);
  a->k = check_key(L, 2, &a->klen);
  check_value(L, 3, &a->v);
  a->expire = check_ttl(L, 4);
}

static int sh_set(lua_State *L) {
  kv_args a;
  check_kv(L, &a);
  if (shdict_set(a.d, a.k, a.klen, &a.v, a.expire) == -ENOMEM) return no_memory(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int sh_add(lua_State *L) {
  kv_args a;
  check_kv(L, &a);
  int rc = shdict_add(a.d, a.k, a.klen, &a.v, a.expire);
  if (rc == -EEXIST) return fail(L, "exists");
  if (rc == -ENOMEM) return no_memory(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int sh_incr(lua_State *L) {
  shdict *d = check_dict(L);
  size_t klen;
  const char *k = check_key(L, 2, &klen);
  shd_value n, init, out;
  check_number(L, 3, &n);
  bool has_init = !lua_isnoneornil(L, 4);
  if (has_init) check_number(L, 4, &init);
  int rc = shdict_incr(d, k, klen, &n, has_init ? &init : NULL, &out);
  if (rc == -ENOENT) return fail(L, ERRSTR_NOTFOUND);
  if (rc == -EINVAL) return luaL_error(L, "shared dict: value of key '%s' is not a number", k);
  if (rc == -ENOMEM) return no_memory(L);
  push_value(L, &out);
  return 1;
}

static int sh_delete(lua_State *L) {
  shdict *d = check_dict(L);
  size_t klen;
  const char *k = check_key(L, 2, &klen);
  shdict_delete(d, k, klen);
  lua_pushboolean(L, 1);
  return 1;
}

/* d:ttl(k) — seconds left (a float; 0: never expires) | nil, "not found" */
static int sh_ttl(lua_State *L) {
  shdict *d = check_dict(L);
  size_t klen;
  const char *k = check_key(L, 2, &klen);
  int64_t left;
  if (shdict_ttl(d, k, klen, &left) == -ENOENT) return fail(L, ERRSTR_NOTFOUND);
  lua_pushnumber(L, (lua_Number)left / 1e9);
  return 1;
}

/* push_keys — protected part of d:keys (the malloc'd snapshot is freed by
** the caller whatever happens here) */
static int push_keys(lua_State *L) {
  const shd_keys *ks = lua_touserdata(L, 1);
  lua_createtable(L, ks->n > (size_t)INT32_MAX ? INT32_MAX : (int)ks->n, 0);
  for (size_t i = 0; i < ks->n; i++) {
    lua_pushlstring(L, ks->k[i].p, ks->k[i].len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* d:keys([max]) — max nil or 0: every key */
static int sh_keys(lua_State *L) {
  shdict *d = check_dict(L);
  lua_Integer max = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, max >= 0, 2, "negative max");
  shd_keys *ks;
  if (shdict_keys(d, (size_t)max, &ks) < 0) return no_memory(L);
  lua_pushcfunction(L, push_keys);
  lua_pushlightuserdata(L, ks);
  int st = lua_pcall(L, 1, 1, 0);
  free(ks);
  if (st != LUA_OK) return lua_error(L);
  return 1;
}

static int sh_tostring(lua_State *L) {
  size_t len;
  const char *name = shdict_name(check_dict(L), &len);
  lua_pushliteral(L, "shared dict: ");
  lua_pushlstring(L, name, len);
  lua_concat(L, 2);
  return 1;
}

/* go.shared(name) — upvalue 1: this VM's weak cache name -> handle */
static int go_shared(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  lua_settop(L, 1);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TUSERDATA) return 1;
  shdict **h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = shdict_open(name, len);
  class_set(L, &SHARED_KEY);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, -2);
  lua_rawset(L, lua_upvalueindex(1));
  return 1;
}

void lshared_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"get", sh_get},       {"set", sh_set},
                                     {"add", sh_add},       {"incr", sh_incr},
                                     {"delete", sh_delete}, {"keys", sh_keys},
                                     {"ttl", sh_ttl},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__tostring", sh_tostring}, {NULL, NULL}};
  class_define(L, &SHARED_KEY, SHARED_MT, methods, meta);
  lua_pop(L, 1);
  class_weaktable(L, "v"); /* the cache, weak values */
  lua_pushcclosure(L, go_shared, 1);
  lua_setfield(L, -2, "shared");
}
