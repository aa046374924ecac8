/*
** main.c — the goluarun executable: a drop-in `lua` interpreter (-e, -l,
** -v, arg, ..., #! line, stdin) whose script runs as the main goroutine on
** P 0 of a G/M/P runtime; -p N / GOLUA_MAXPROCS sets the number of Ps.
** The runtime's settings come from the environment (config_from_env, the
** only reader of GOLUA_*), then the command line overrides them.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../runtime/config.h"
#include "../runtime/sched.h"
#include "../runtime/signal.h"
#include "gohandle.h"
#include "goluarun.h"
#include "lcodec.h"
#include "lresp.h"
#include "lcoro.h"
#include "lgo.h"
#include "lnet.h"
#include "lstdio.h"

#ifndef GLR_LUADIR
#define GLR_LUADIR "/usr/local/share/goluarun/lua"
#endif
#ifndef GLR_CMODDIR
#define GLR_CMODDIR "/usr/local/lib/goluarun"
#endif
#ifndef GLR_INSTALL_CMODDIR
#define GLR_INSTALL_CMODDIR GLR_CMODDIR
#endif
#ifndef GLR_INSTALL_LUADIR
#define GLR_INSTALL_LUADIR GLR_LUADIR
#endif

static const char *progname = "goluarun";

static void usage(void) {
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Available options are:\n"
          "  -e stat   execute string 'stat'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -p N      run N Ps (default: GOLUA_MAXPROCS or the number of CPUs)\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n",
          progname);
}

typedef struct cli {
  int argc;
  char **argv;
  int script;    /* index of the script in argv, or argc if none */
  int nprocs;
  bool has_e, has_v, no_env, warn;
} cli;

/* parse_args — lua.c's collectargs plus -p; returns -1 on a bad option */
static int parse_args(cli *c) {
  char **argv = c->argv;
  int i;
  for (i = 1; i < c->argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') break;
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "-") == 0) break;
    switch (a[1]) {
      case 'v': if (a[2]) return -1; c->has_v = true; break;
      case 'E': if (a[2]) return -1; c->no_env = true; break;
      case 'W': if (a[2]) return -1; c->warn = true; break;
      case 'e': case 'l': case 'p':
        if (a[1] == 'e') c->has_e = true;
        if (a[2] == 0) {
          if (++i >= c->argc || argv[i][0] == '-') return -1;
        }
        if (a[1] == 'p') {
          const char *v = a[2] ? a + 2 : argv[i];
          c->nprocs = atoi(v);
          if (c->nprocs < 1 || c->nprocs > 256) return -1;
        }
        break;
      default: return -1;
    }
  }
  c->script = i;
  return 0;
}

/* runtime_config — the environment's settings, then the flags' (-p; -E
** has only ever hidden GOLUA_MAXPROCS among the GOLUA_* variables) */
static rt_config runtime_config(const cli *c) {
  rt_config cfg;
  config_from_env(&cfg, progname, c->nprocs || c->no_env);
  if (c->nprocs) cfg.nprocs = c->nprocs;
  return cfg;
}

/* raise_nofile — as Go does: the soft fd limit up to the hard one */
static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static void append_path(lua_State *L, const char *field, const char *extra) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s;%s", lua_tostring(L, -1), extra);
  lua_setfield(L, -3, field);
  lua_pop(L, 2);
}

static int panic(lua_State *L) {
  const char *m = lua_tostring(L, -1);
  fprintf(stderr, "%s: PANIC: unprotected error in call to Lua API (%s)\n", progname,
          m ? m : "?");
  fflush(stderr);
  abort();
}

/* open_vm — every P's VM: standard libraries, the replacement coroutine
** library, go (also global) and net, goluarun.codec and goluarun.respparse
** (preloaded), and the project's lua/ on the path. */
static void open_vm(lua_State *L, P *p, void *ud) {
  (void)p;
  cli *c = ud;
  lua_atpanic(L, panic);
  if (c->no_env) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  lstdio_open(L);
  if (c->warn) lua_warning(L, "@on", 0);
  /* replace the standard coroutine library (already in package.loaded) */
  lcoro_open(L);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "coroutine");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, "coroutine");
  lua_pop(L, 1);
  luaL_requiref(L, "go", luaopen_go, 1);
  lua_pop(L, 1);
  luaL_requiref(L, "net", luaopen_net, 0);
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_codec);
  lua_setfield(L, -2, "goluarun.codec");
  lua_pushcfunction(L, luaopen_respparse);
  lua_setfield(L, -2, "goluarun.respparse");
  lua_pop(L, 1);
  append_path(L, "path", GLR_LUADIR "/?.lua;" GLR_LUADIR "/?/init.lua;" GLR_INSTALL_LUADIR
              "/?.lua;" GLR_INSTALL_LUADIR "/?/init.lua");
  append_path(L, "cpath", GLR_CMODDIR "/?.so;" GLR_INSTALL_CMODDIR "/?.so");
}

/* the main goroutine's body: -l / -e actions in order, then the script */
static const char driver_src[] =
    "local actions = ...\n"
    "for i = 1, #actions do\n"
    "  local a = actions[i]\n"
    "  if a.kind == 'l' then _ENV[a.name] = require(a.mod)\n"
    "  elseif a.kind == 'e' then a.fn()\n"
    "  else return a.fn(table.unpack(a, 1, a.n)) end\n"
    "end\n";

static int report_load(lua_State *L, int status) {
  if (status == LUA_OK) return 0;
  fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
  fflush(stderr);
  return 1;
}

static void create_arg_table(lua_State *L, cli *c) {
  int script = c->script < c->argc ? c->script : 0;
  lua_createtable(L, c->argc - script, script + 1);
  for (int i = 0; i < c->argc; i++) {
    lua_pushstring(L, c->argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* push_action — appends {kind=...} built by the caller at the stack top */
static void push_action(lua_State *L, int actions) {
  lua_rawseti(L, actions, (lua_Integer)luaL_len(L, actions) + 1);
}

static int build_actions(lua_State *L, cli *c, int actions) {
  for (int i = 1; i < c->script; i++) {
    const char *a = c->argv[i];
    if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l')) continue;
    const char *v = a[2] ? a + 2 : c->argv[++i];
    lua_newtable(L);
    lua_pushstring(L, a[1] == 'e' ? "e" : "l");
    lua_setfield(L, -2, "kind");
    if (a[1] == 'e') {
      if (report_load(L, luaL_loadbuffer(L, v, strlen(v), "=(command line)"))) return 1;
      lua_setfield(L, -2, "fn");
    } else {
      const char *eq = strchr(v, '=');
      lua_pushlstring(L, v, eq ? (size_t)(eq - v) : strlen(v));
      lua_setfield(L, -2, "name");
      lua_pushstring(L, eq ? eq + 1 : v);
      lua_setfield(L, -2, "mod");
    }
    push_action(L, actions);
  }
  return 0;
}

static int build_script(lua_State *L, cli *c, int actions) {
  bool has_script = c->script < c->argc;
  if (!has_script && (c->has_e || c->has_v)) return 0;
  const char *fname = has_script ? c->argv[c->script] : "-";
  if (strcmp(fname, "-") == 0 && (!has_script || strcmp(c->argv[c->script - 1], "--") != 0))
    fname = NULL;
  lua_newtable(L);
  lua_pushliteral(L, "script");
  lua_setfield(L, -2, "kind");
  if (report_load(L, luaL_loadfile(L, fname))) return 1;
  lua_setfield(L, -2, "fn");
  int n = 0;
  for (int i = c->script + 1; i < c->argc; i++) {
    lua_pushstring(L, c->argv[i]);
    lua_rawseti(L, -2, ++n);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  push_action(L, actions);
  return 0;
}

static int start_main(rt *r, cli *c) {
  lua_State *L = r->ps[0]->L;
  create_arg_table(L, c);
  if (luaL_loadbuffer(L, driver_src, sizeof driver_src - 1, "=(goluarun)") != LUA_OK)
    return report_load(L, 1);
  lua_newtable(L);
  int actions = lua_gettop(L);
  if (build_actions(L, c, actions) || build_script(L, c, actions)) return 1;
  lua_settop(L, actions);
  go_start(L, actions - 1, 1, 1);
  lua_settop(L, 0);
  return 0;
}

int main(int argc, char **argv) {
  cli c = {.argc = argc, .argv = argv};
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (parse_args(&c) < 0) {
    usage();
    return 1;
  }
  if (c.has_v) {
    printf("goluarun %s (%s)\n", GLR_VERSION, LUA_RELEASE);
    fflush(stdout);
  }
  raise_nofile();
  rt_config cfg = runtime_config(&c);
  rt *r = rt_new(&cfg, open_vm, &c);
  if (start_main(r, &c)) return 1;
  signal_install(r);
  int code = rt_run(r);
  fflush(NULL);
  if (atomic_load(&r->close_vms)) rt_free(r);
  return code;
}
