/* lprof.c — see lprof.h. */
#include "lprof.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "../runtime/pd.h"
#include "../runtime/prof.h"

/* ---------- the profiler ---------- */

/* core.start([hz]) -> true | nil, err */
static int l_start(lua_State *L) {
  lua_Integer hz = luaL_optinteger(L, 1, PROF_HZ_DEFAULT);
  luaL_argcheck(L, hz >= 1 && hz <= PROF_HZ_MAX, 1, "hz must be 1..1000");
  int rc = prof_start(vm_p(L)->rt, (int)hz);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, rc == -1 ? "profile already running" : "cannot start the sampler thread");
  return 2;
}

/* core.stop() -> folded stacks | nil, err */
static int l_stop(lua_State *L) {
  size_t len;
  char *text = prof_stop(vm_p(L)->rt, &len);
  if (!text) {
    lua_pushnil(L);
    lua_pushliteral(L, "no profile running");
    return 2;
  }
  lua_pushlstring(L, text, len); /* may raise: free first */
  free(text);
  return 1;
}

/* ---------- goroutines of this P ---------- */

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void push_wait(lua_State *L, G *g, int64_t now) {
  set_str(L, "reason", g->waitreason ? g->waitreason : "?");
  lua_pushnumber(L, g->waitsince ? (double)(now - g->waitsince) / 1e9 : 0);
  lua_setfield(L, -2, "waiting");
  if (g->waitreason && strcmp(g->waitreason, "IO wait") == 0) {
    set_int(L, "fd", g->waitfd);
    set_str(L, "direction", g->waitmode == PD_MODE_R ? "read" : "write");
  }
}

static void push_goroutine(lua_State *L, P *p, G *g, int64_t now) {
  lua_createtable(L, 0, 8);
  set_int(L, "id", (lua_Integer)g->id);
  set_int(L, "p", p->id);
  set_str(L, "state", sched_gstatus_name(g->status));
  if (g->status == G_WAITING) push_wait(L, g, now);
  luaL_traceback(L, g->L, NULL, 0);
  lua_setfield(L, -2, "traceback");
}

/* core.goroutines() -> { {id, p, state, reason, waiting, fd, direction,
** traceback}, ... } for the calling P */
static int l_goroutines(lua_State *L) {
  P *p = vm_p(L);
  int64_t now = mono_now();
  lua_createtable(L, p->ngoroutines, 0);
  int n = 0;
  for (G *g = p->allg; g; g = g->allnext) {
    push_goroutine(L, p, g, now);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int open_core(lua_State *L) {
  static const luaL_Reg f[] = {
      {"start", l_start}, {"stop", l_stop}, {"goroutines", l_goroutines}, {NULL, NULL}};
  luaL_newlib(L, f);
  return 1;
}

void lprof_open(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_core);
  lua_setfield(L, -2, "goluarun.pprof.core");
  lua_pop(L, 1);
}

/* ---------- goluarun --profile ---------- */

/* render — pprof.flamegraph(folded) on the stack top; the SVG replaces it */
static int render(lua_State *L) {
  const char *folded = lua_tostring(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "goluarun.pprof");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "flamegraph");
  lua_pushstring(L, folded);
  lua_call(L, 1, 1);
  return 1;
}

static int write_file(const char *path, const char *s, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(s, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

int lprof_write_svg(rt *r, lua_State *L, const char *path) {
  size_t len;
  char *folded = prof_stop(r, &len);
  if (!folded) return -1;
  lua_pushcfunction(L, render);
  lua_pushlstring(L, folded, len);
  free(folded);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "goluarun: --profile: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  size_t n;
  const char *svg = lua_tolstring(L, -1, &n);
  int rc = write_file(path, svg, n);
  if (rc < 0) perror(path);
  lua_pop(L, 1);
  return rc;
}
