/*
** lpool.c — net._idleset(): a set of idle stream conns, each watched by its
** pollDesc while it sits in a pool (conn.h "Idle"), so that a conn the peer
** closes (or that outlives its idle timeout) is closed and leaves the set
** when that happens, from the scheduler loop, with no goroutine or timer
** of its own. lua/goluarun/pool.lua keeps the keys, the LRU order and the
** limits; this file keeps the count exact.
**
** Invariants (owner M only: a set belongs to one VM):
**  - set->idle is the number of conns in the set still idle (open and
**    watched); a conn's close while idle (peer, deadline, close(), GC)
**    calls set_drop, which decrements it.
**  - The set's user value is pool.lua's lists table (key -> list of
**    conns), which holds every conn added and not yet taken (dropped ones
**    included, until take or the set's collection): pool.lua appends a
**    conn to its key's list in the step that adds it, and takes every
**    conn it removes from a list. So a watched conn never outlives the
**    set it points to: the set's __gc walks the lists and closes the conns
**    still idle in it. (A table of members of the set's own cost a
**    lua_rawset in each of the pool's two steps, about 250 instructions.)
**
**   set:add(conn [, idle_timeout]) -> true | nil, why (the caller closes);
**     the conn's deadlines and timeout are cleared (also by putlast)
**   set:take(conn)  -> true (idle, now the caller's; conn:reused() + 1)
**                      | false (it was dropped: closed)
**   set:idle(conn)  -> whether conn is still idle in the set
**   set:count()     -> idle conns
**
** The set also keeps the pool's counts and the limits its fast path reads
** (so that path touches no field of pool.lua's table):
**   net._idleset(max_idle, idle_timeout, fast, lists) -- fast: no max_conns
**   set:counts()    -> idle, active, reuses
**   set:moved(da, dr) active += da, reuses += dr (pool.lua's slow paths)
**   set:close()     the pool is closed: putlast declines from now on
**
** The pool's two common steps, each one C call (so no preemption can come
** between their parts: no net._nopreempt needed), on pool.lua's tables:
**   set:takelast(list, keyof, key [, deadline]) -> conn | nil: the last
**     live conn of the list (the most recently used), taken; dropped ones
**     on the way leave the list; keyof[conn] = key, active and reuses + 1;
**     a deadline: conn:setdeadline(deadline) in the same call
**   set:putlast(list, keyof, conn) -> true | false: conn added to the set
**     (the idle timeout) and to the list's end, keyof[conn] = nil, active
**     - 1; false (nothing done): the pool's slow path is needed (max_conns,
**     a closed pool, a full list, a conn that cannot idle)
** Both check the set by comparing its metatable with their upvalue, and
** the conn by its tag (conn.h conn_is), neither through the registry.
**   set:bind(lists, keyof) -> take, put: the same two steps as closures
**     over the set and the pool's tables: take(addr [, deadline]) is
**     takelast on lists[addr] (nil when the pool is closed, has
**     max_conns or no list), put(conn) is putlast on the list of
**     keyof[conn] (false when conn is not the pool's). The HTTP client
**     calls them directly: no Lua wrapper, no field of the pool's read.
**
** net._nopreempt(fn, ...) runs fn where preemption cannot stop it (below).
*/
#include "lpool.h"

#include <lauxlib.h>

#include "args.h"
#include "classes.h"
#include "conn.h"

#define IDLESET_MT "goluarun.idleset"
static const char IDLESET_KEY = 'i';

typedef struct idleset { /* every field: owner M only */
  lua_Integer idle;     /* conns still idle */
  lua_Integer active;   /* conns handed out (pool.lua's count) */
  lua_Integer reuses;   /* idle conns handed out again */
  lua_Integer max_idle; /* the pool's limits, for putlast */
  double idle_timeout;
  bool fast;   /* no max_conns: putlast may apply */
  bool closed; /* set:close() came */
  uintptr_t tag; /* const: set_tag(set), method_set's mark (as conn.h conn_is) */
} idleset;

/* set_tag — a set's mark: its address, mixed (no other value's bytes
** hold it by chance, and the size check keeps the read inside the block) */
static uintptr_t set_tag(const idleset *set) { return (uintptr_t)set ^ (uintptr_t)0x7f4a7c159e3779b9u; }

static idleset *check_set(lua_State *L) { return class_check(L, 1, &IDLESET_KEY, IDLESET_MT); }

/* the set at 1, in a method whose upvalue 1 is the set's metatable: its
** tag, else the metatable (which raises for anything else) */
static idleset *method_set(lua_State *L) {
  idleset *set = lua_touserdata(L, 1);
  if (set && lua_rawlen(L, 1) == sizeof *set && set->tag == set_tag(set)) return set;
  return class_method(L, 1, &IDLESET_KEY, IDLESET_MT);
}

static void set_drop(conn_stream *cs, void *arg) {
  (void)cs;
  ((idleset *)arg)->idle--;
}

/* a conn entering the set leaves its user's deadlines and timeout behind:
** the next user of the pool starts clean */
static void clear_times(lua_State *L, conn_stream *cs) {
  if (cs->c.status == CONN_OPEN) glr_pd_setdeadline(L, cs->c.pd, GLR_READ | GLR_WRITE, 0);
  cs->c.timeout = -1;
}

static int s_add(lua_State *L) {
  idleset *set = check_set(L);
  conn_stream *cs = conn_stream_check(L, 2);
  int64_t deadline = 0;
  if (!lua_isnoneornil(L, 3)) {
    double t = args_seconds(L, 3);
    luaL_argcheck(L, t > 0, 3, "idle timeout must be positive");
    deadline = glr_deadline(t);
  }
  clear_times(L, cs);
  const char *why = conn_idle_start(L, cs, deadline, set_drop, set);
  if (why) return conn_push_fail(L, why);
  set->idle++;
  lua_pushboolean(L, 1);
  return 1;
}

static bool is_member(lua_State *L, int conn_idx, idleset *set) {
  conn_stream *cs = conn_stream_check(L, conn_idx);
  return conn_idle_is(cs, set_drop, set);
}

static int s_take(lua_State *L) {
  idleset *set = check_set(L);
  conn_stream *cs = conn_stream_check(L, 2);
  bool alive = is_member(L, 2, set) && conn_idle_stop(L, cs);
  if (alive) set->idle--;
  lua_pushboolean(L, alive);
  return 1;
}

/* keyof[conn at conn_idx] = the value on the top (popped) */
static void keyof_set(lua_State *L, int keyof, int conn_idx) {
  lua_pushvalue(L, conn_idx);
  lua_rotate(L, -2, 1);
  lua_rawset(L, keyof);
}

/* takelast's step on the list at `list` (indices or upvalues): the conn
** pushed, or nil; a falsy value at dl: no deadline */
static int take_last(lua_State *L, idleset *set, int list, int keyof, int key, int dl) {
  for (lua_Integer i = (lua_Integer)lua_rawlen(L, list); i >= 1; i--) {
    lua_rawgeti(L, list, i);
    int c = lua_gettop(L);
    lua_pushnil(L);
    lua_rawseti(L, list, i);
    conn_stream *cs = conn_stream_check(L, c);
    if (conn_idle_is(cs, set_drop, set) && conn_idle_stop(L, cs)) {
      set->idle--;
      set->active++;
      set->reuses++;
      if (lua_toboolean(L, dl)) conn_setdeadline_at(L, &cs->c, dl, GLR_READ | GLR_WRITE);
      lua_pushvalue(L, key);
      keyof_set(L, keyof, c);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  return 1;
}

/* putlast's step: the conn at c onto the list at `list`: true, or false
** with nothing done (the slow path) */
static int put_last(lua_State *L, idleset *set, int list, int keyof, int c) {
  conn_stream *cs = conn_stream_check(L, c);
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  bool ok = set->fast && !set->closed && n < set->max_idle;
  if (ok) {
    clear_times(L, cs);
    ok = !conn_idle_start(L, cs, glr_deadline(set->idle_timeout), set_drop, set);
  }
  if (ok) {
    set->idle++;
    set->active--;
    lua_pushvalue(L, c);
    lua_rawseti(L, list, n + 1);
    lua_pushnil(L);
    keyof_set(L, keyof, c);
  }
  lua_pushboolean(L, ok);
  return 1;
}

static int s_takelast(lua_State *L) {
  idleset *set = method_set(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checkany(L, 4);
  lua_settop(L, 5); /* 5: the deadline, or nil/false: none */
  return take_last(L, set, 2, 3, 4, 5);
}

static int s_putlast(lua_State *L) {
  idleset *set = method_set(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 4);
  return put_last(L, set, 2, 3, 4);
}

/* the pool's own take(addr [, deadline]) and put(conn) (set:bind): the
** upvalues are the set, the lists and keyof, so a call reads no field of
** the pool's table and runs no Lua of pool.lua */
static int bound_take(lua_State *L) {
  idleset *set = lua_touserdata(L, lua_upvalueindex(1));
  lua_settop(L, 2);
  lua_pushvalue(L, 1);
  if (!set->fast || set->closed || lua_rawget(L, lua_upvalueindex(2)) != LUA_TTABLE) {
    lua_pushnil(L); /* 3: the list */
    return 1;
  }
  return take_last(L, set, 3, lua_upvalueindex(3), 1, 2);
}

static int bound_put(lua_State *L) {
  idleset *set = lua_touserdata(L, lua_upvalueindex(1));
  lua_settop(L, 1);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, lua_upvalueindex(3)) == LUA_TNIL /* 2: its key */
      || lua_rawget(L, lua_upvalueindex(2)) != LUA_TTABLE) { /* 2: the list */
    lua_pushboolean(L, 0); /* not this pool's, or no list: the slow path */
    return 1;
  }
  return put_last(L, set, 2, lua_upvalueindex(3), 1);
}

static int s_bind(lua_State *L) {
  check_set(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  for (int i = 0; i < 2; i++) {
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, i == 0 ? bound_take : bound_put, 3);
  }
  return 2;
}

static int s_counts(lua_State *L) {
  idleset *set = check_set(L);
  lua_pushinteger(L, set->idle);
  lua_pushinteger(L, set->active);
  lua_pushinteger(L, set->reuses);
  return 3;
}

static int s_moved(lua_State *L) {
  idleset *set = check_set(L);
  set->active += luaL_checkinteger(L, 2);
  set->reuses += luaL_checkinteger(L, 3);
  return 0;
}

static int s_close(lua_State *L) {
  check_set(L)->closed = true;
  return 0;
}

static int s_idle(lua_State *L) {
  idleset *set = check_set(L);
  lua_pushboolean(L, is_member(L, 2, set));
  return 1;
}

static int s_count(lua_State *L) {
  lua_pushinteger(L, check_set(L)->idle);
  return 1;
}

/* the conns of the list on the top still idle in set: closed */
static void close_idle(lua_State *L, idleset *set) {
  for (lua_Integer i = (lua_Integer)lua_rawlen(L, -1); i >= 1; i--) {
    lua_rawgeti(L, -1, i);
    conn_stream *cs = conn_stream_is(L, -1);
    if (cs && conn_idle_is(cs, set_drop, set)) conn_close(L, &cs->c);
    lua_pop(L, 1);
  }
}

/* __gc: close the conns still idle (they point at this set), found in
** the lists (the user value) */
static int s_gc(lua_State *L) {
  idleset *set = check_set(L);
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) return 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_istable(L, -1)) close_idle(L, set);
    lua_pop(L, 1);
  }
  return 0;
}

/* net._nopreempt(fn, ...) -> fn(...): called without a continuation, so
** fn cannot yield: asynchronous preemption (preempt.c) skips it, and a
** multi-step update of state that goroutines share (a pool's lists and
** counts) is never interleaved with another goroutine's. fn must not park
** (a parking call raises inside it). */
static int nopreempt(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* net._idleset(max_idle, idle_timeout, fast, lists) */
static int new_set(lua_State *L) {
  lua_Integer max_idle = luaL_checkinteger(L, 1);
  double idle_timeout = args_seconds(L, 2);
  luaL_argcheck(L, max_idle >= 0, 1, "max_idle must be non-negative");
  luaL_argcheck(L, idle_timeout > 0, 2, "idle timeout must be positive");
  luaL_checktype(L, 4, LUA_TTABLE);
  idleset *set = lua_newuserdatauv(L, sizeof *set, 1);
  *set = (idleset){.max_idle = max_idle, .idle_timeout = idle_timeout, .fast = lua_toboolean(L, 3)};
  set->tag = set_tag(set);
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, -2, 1);
  class_set(L, &IDLESET_KEY);
  return 1;
}

/* takelast and putlast into the class's __index (metatable on the top):
** upvalue the set's metatable */
static void method_pair(lua_State *L) {
  static const luaL_Reg fast[] = {{"takelast", s_takelast}, {"putlast", s_putlast}, {NULL, NULL}};
  lua_getfield(L, -1, "__index");
  for (const luaL_Reg *r = fast; r->name; r++) {
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, r->func, 1);
    lua_setfield(L, -2, r->name);
  }
  lua_pop(L, 1);
}

void lpool_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"add", s_add},
                                     {"take", s_take},
                                     {"counts", s_counts},
                                     {"moved", s_moved},
                                     {"close", s_close},
                                     {"idle", s_idle},
                                     {"count", s_count},
                                     {"bind", s_bind},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", s_gc}, {NULL, NULL}};
  class_define(L, &IDLESET_KEY, IDLESET_MT, methods, meta);
  method_pair(L);
  lua_pop(L, 1);
  lua_pushcfunction(L, new_set);
  lua_setfield(L, -2, "_idleset");
  lua_pushcfunction(L, nopreempt);
  lua_setfield(L, -2, "_nopreempt");
}
