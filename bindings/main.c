/*
** main.c — the goluarun executable: a drop-in `lua` interpreter (lua.c's
** options, messages, LUA_INIT, arg, -i's prompt, stdin) whose actions run
** in order as the main goroutine on P 0 of a G/M/P runtime (its body is a
** C function, so no frame of ours shows in a traceback); goluarun's own
** options (extra_opts: -p N) sit in one table beside lua's.
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
#include "../runtime/prof.h"
#include "../runtime/sched.h"
#include "../runtime/signal.h"
#include "gohandle.h"
#include "goluarun.h"
#include "lcodec.h"
#include "lhttp.h"
#include "lhttpread.h"
#include "lresp.h"
#include "lcoro.h"
#include "ldbhook.h"
#include "lgo.h"
#include "lnet.h"
#include "lprof.h"
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
          "  -i        enter interactive mode after executing 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables\n"
          "  -W        turn warnings on\n"
          "  --        stop handling options\n"
          "  -         stop handling options and execute stdin\n"
          "goluarun's own options:\n"
          "  -p N      run N Ps (default: GOLUA_MAXPROCS or the number of CPUs)\n"
          "  --profile out.svg  profile the whole run (99 Hz), write a flame graph at exit\n",
          progname);
  fflush(stderr);
}

enum { BAD_UNKNOWN = 1, BAD_NEEDS_ARG, BAD_VALUE };

typedef struct cli {
  int argc;
  char **argv;
  int script;      /* index of the script in argv, or argc if none */
  int bad;         /* index of the bad option, 0 if none */
  int why;         /* BAD_*: what is wrong with it */
  int nprocs;
  bool has_e, has_v, has_i, no_env, warn;
  const char *profile; /* --profile FILE: the run's flame graph (SVG) */
} cli;

/* goluarun's own options, beside lua's. A short one ("-p") takes its value
** joined ("-p4") or as the next argument; a long one ("--name") as the next
** argument or after '='. set returns false for a bad value. */
typedef struct extra_opt {
  const char *name;
  bool (*set)(cli *c, const char *value);
} extra_opt;

static bool set_nprocs(cli *c, const char *v) {
  char *end;
  long n = strtol(v, &end, 10);
  c->nprocs = (int)n;
  return *v && !*end && n >= 1 && n <= 256;
}

static bool set_profile(cli *c, const char *v) {
  c->profile = v;
  return true;
}

static const extra_opt extra_opts[] = {
    {"-p", set_nprocs},
    {"--profile", set_profile},
};

static int fail(cli *c, int i, int why) {
  c->bad = i;
  c->why = why;
  return -1;
}

/* extra_value — argv[*i] as an extra option's use: its value, or NULL */
static const char *extra_value(cli *c, const extra_opt *o, int *i) {
  const char *a = c->argv[*i];
  size_t n = strlen(o->name);
  if (strncmp(a, o->name, n) != 0) return NULL;
  bool is_long = o->name[1] == '-';
  if (a[n] && !is_long) return a + n;
  if (a[n] == '=' && is_long) return a + n + 1;
  if (a[n]) return NULL;
  if (*i + 1 >= c->argc) return "";
  return c->argv[++*i];
}

/* parse_extra — 1: argv[*i] was one of ours, 0: not, -1: bad */
static int parse_extra(cli *c, int *i) {
  for (size_t k = 0; k < sizeof extra_opts / sizeof extra_opts[0]; k++) {
    int at = *i;
    const char *v = extra_value(c, &extra_opts[k], i);
    if (!v) continue;
    if (!*v) return fail(c, at, BAD_NEEDS_ARG);
    return extra_opts[k].set(c, v) ? 1 : fail(c, at, BAD_VALUE);
  }
  return 0;
}

/* parse_lua_opt — lua.c's collectargs for one option; 1 = stop here */
static int parse_lua_opt(cli *c, int *i) {
  const char *a = c->argv[*i];
  switch (a[1]) {
    case '-': if (a[2]) return fail(c, *i, BAD_UNKNOWN);
              c->script = *i + 1; return 1;
    case '\0': return 1;
    case 'E': c->no_env = true; break;
    case 'W': c->warn = true; break;
    case 'i': c->has_i = true; /* -i implies -v */
      /* fall through */
    case 'v': c->has_v = true; break;
    case 'e': c->has_e = true; /* fall through */
    case 'l':
      if (a[2]) return 0;
      if (++*i >= c->argc || c->argv[*i][0] == '-')
        return fail(c, *i - 1, BAD_NEEDS_ARG);
      return 0;
    default: return fail(c, *i, BAD_UNKNOWN);
  }
  return a[2] ? fail(c, *i, BAD_UNKNOWN) : 0;
}

/* parse_args — lua.c's collectargs plus goluarun's own options */
static int parse_args(cli *c) {
  int i;
  for (i = 1; i < c->argc; i++) {
    c->script = i;
    if (c->argv[i][0] != '-') return 0;
    int r = parse_extra(c, &i);
    if (r > 0) continue;
    if (r == 0) r = parse_lua_opt(c, &i);
    if (r != 0) return r < 0 ? -1 : 0;
  }
  c->script = i;
  return 0;
}

/* report_bad — lua's print_usage (goluarun's options worded alike) */
static void report_bad(const cli *c) {
  const char *bad = c->argv[c->bad];
  if (c->why == BAD_NEEDS_ARG) {
    fprintf(stderr, "%s: '%.*s' needs argument\n", progname, (int)strcspn(bad, "="), bad);
  } else if (c->why == BAD_VALUE) {
    fprintf(stderr, "%s: bad value for option '%s'\n", progname, bad);
  } else {
    fprintf(stderr, "%s: unrecognized option '%s'\n", progname, bad);
  }
  usage();
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

/* load_cmod — package.loadlib(file, "luaopen_<name, dots as _>") */
static bool load_cmod(lua_State *L, const char *name, const char *file) {
  lua_getfield(L, lua_upvalueindex(1), "loadlib");
  lua_pushstring(L, file);
  lua_pushstring(L, "luaopen_");
  luaL_gsub(L, name, ".", "_");
  lua_concat(L, 2);
  lua_call(L, 2, 2);
  if (lua_isfunction(L, -2)) {
    lua_pop(L, 1);
    return true;
  }
  return false;
}

/* search_own — the last of package.searchers: goluarun's own library
** (GLR_LUADIR, GLR_CMODDIR and their installed places), so package.path
** and package.cpath stay exactly lua's (LUA_PATH, ';;', -E). Upvalues:
** the package table, the Lua path, the C path. */
static int search_own(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (int up = 2; up <= 3; up++) {
    lua_settop(L, 1);
    lua_getfield(L, lua_upvalueindex(1), "searchpath");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, lua_upvalueindex(up));
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) continue;
    const char *file = lua_tostring(L, -2);
    if (up == 2 ? luaL_loadfile(L, file) != LUA_OK : !load_cmod(L, name, file))
      return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                        lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
  }
  return 0; /* no message: require's stays lua's word for word */
}

static void add_searcher(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_pushvalue(L, -2);
  lua_pushliteral(L, GLR_LUADIR "/?.lua;" GLR_LUADIR "/?/init.lua;" GLR_INSTALL_LUADIR
                  "/?.lua;" GLR_INSTALL_LUADIR "/?/init.lua");
  lua_pushliteral(L, GLR_CMODDIR "/?.so;" GLR_INSTALL_CMODDIR "/?.so");
  lua_pushcclosure(L, search_own, 3);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
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
** library, go (also global) and net, goluarun.codec, goluarun.httpparse and
** goluarun.respparse (preloaded), and the project's lua/ on the path. */
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
  ldbhook_open(L);
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
  lua_pushcfunction(L, luaopen_httpparse);
  lua_setfield(L, -2, "goluarun.httpparse");
  lua_pushcfunction(L, luaopen_httpread);
  lua_setfield(L, -2, "goluarun.httpread");
  lua_pushcfunction(L, luaopen_respparse);
  lua_setfield(L, -2, "goluarun.respparse");
  lua_pop(L, 1);
  add_searcher(L);
}

/* ---------- the main goroutine: lua.c's pmain, step by step ----------
** Its body is a C function (no frame of ours in a traceback) that runs the
** actions in lua's order: LUA_INIT, then -e / -l as given, the script (or
** stdin), -i's prompt. Each is called with lua_callk, so every action may
** park; chunks are loaded when their turn comes, as lua does. */

enum { A_CODE, A_FILE, A_LIB, A_SCRIPT, A_REPL, A_DEBUG };

/* GOLUA_DEBUG_ADDR: the first action starts the debug endpoint; the server
** is kept in the registry and released when the actions are done (it then
** closes once nothing else runs: it must not keep the process alive) */
#define DEBUG_SRV_KEY "goluarun.debugsrv"
static const char debug_src[] =
    "local addr = ...\n"
    "local srv, err = require('goluarun.pprof').serve(addr)\n"
    "if not srv then error('GOLUA_DEBUG_ADDR=' .. addr .. ': ' .. err, 0) end\n"
    "return srv\n";

/* stop_with — lua's report of an error outside a call (a chunk that does
** not load, a bad 'arg'): "progname: msg", status 1, nothing more runs */
static int stop_with(lua_State *L, const char *msg) {
  fprintf(stderr, "%s: %s\n", progname, msg);
  fflush(stderr);
  rt_stop(vm_p(L)->rt, STOP_EXIT, EXIT_FAILURE, false);
  return -1;
}

/* push_script_args — lua's pushargs: arg[1..#arg] as they are now */
static int push_script_args(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE) return stop_with(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  if (!lua_checkstack(L, n + 3)) return stop_with(L, "too many arguments to script");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -n - 1);
  return n;
}

static int load_action(lua_State *L, int kind, const char *v, const char *name) {
  int st = kind == A_CODE ? luaL_loadbuffer(L, v, strlen(v), name) : luaL_loadfile(L, v);
  return st == LUA_OK ? 0 : stop_with(L, lua_tostring(L, -1));
}

/* start_action — push the call of the action at index 2; its argument
** count, or -1 when it stopped the run */
static int start_action(lua_State *L, int kind) {
  lua_getfield(L, 2, "v");
  lua_getfield(L, 2, "name");
  const char *v = lua_tostring(L, -2), *name = lua_tostring(L, -1);
  lua_settop(L, 2);
  switch (kind) {
    case A_LIB:
      lua_getglobal(L, "require");
      lua_pushstring(L, v);
      return 1;
    case A_REPL:
      lua_getglobal(L, "require");
      lua_pushliteral(L, "goluarun.repl");
      lua_call(L, 1, 1);
      lua_getfield(L, -1, "run");
      lua_remove(L, -2);
      lua_pushboolean(L, !isatty(0)); /* echo the lines, as readline does */
      return 1;
    case A_SCRIPT:
      return load_action(L, kind, v, NULL) < 0 ? -1 : push_script_args(L);
    case A_DEBUG:
      luaL_loadbuffer(L, debug_src, sizeof debug_src - 1, "=GOLUA_DEBUG_ADDR");
      lua_pushstring(L, v);
      return 1;
    default:
      return load_action(L, kind, v, name);
  }
}

/* finish_action — action at index 2 returned: -l's global gets the result,
** the debug endpoint's server goes to the registry */
static void finish_action(lua_State *L) {
  lua_getfield(L, 2, "kind");
  int kind = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (kind == A_DEBUG) {
    lua_setfield(L, LUA_REGISTRYINDEX, DEBUG_SRV_KEY);
    return;
  }
  if (kind != A_LIB) return;
  lua_getfield(L, 2, "name");
  lua_insert(L, -2);
  lua_setglobal(L, lua_tostring(L, -2));
}

/* release_debug — the actions are done: the debug endpoint may close */
static int release_debug(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, DEBUG_SRV_KEY) != LUA_TNIL) {
    lua_getfield(L, -1, "release");
    lua_insert(L, -2);
    lua_call(L, 1, 0);
  }
  return 0;
}

/* body_k — run the actions after the first `done` ones ([1] = the list) */
static int body_k(lua_State *L, int status, lua_KContext done) {
  (void)status;
  if (done > 0) finish_action(L);
  for (lua_Integer i = done + 1;; i++) {
    lua_settop(L, 1);
    if (lua_rawgeti(L, 1, i) != LUA_TTABLE) return release_debug(L);
    lua_getfield(L, 2, "kind");
    int kind = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    int nargs = start_action(L, kind);
    if (nargs < 0) return 0;
    lua_callk(L, nargs, kind == A_LIB || kind == A_DEBUG ? 1 : 0, (lua_KContext)i, body_k);
    finish_action(L);
  }
}

static int main_body(lua_State *L) { return body_k(L, LUA_OK, 0); }

/* add_action — append {kind, v, name} to the list at index t */
static void add_action(lua_State *L, int t, int kind, const char *v, const char *name) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, v);
  lua_setfield(L, -2, "v");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
}

/* add_init — lua's handle_luainit: LUA_INIT_5_4, else LUA_INIT; "@file"
** runs a file, anything else is code */
static void add_init(lua_State *L, int t) {
  static const char *const names[] = {"=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR, "=LUA_INIT"};
  for (int k = 0; k < 2; k++) {
    const char *init = getenv(names[k] + 1);
    if (!init) continue;
    if (init[0] == '@') add_action(L, t, A_FILE, init + 1, NULL);
    else add_action(L, t, A_CODE, init, names[k]);
    return;
  }
}

/* add_options — -e and -l in their order */
static void add_options(lua_State *L, int t, const cli *c) {
  for (int i = 1; i < c->script; i++) {
    const char *a = c->argv[i];
    if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l')) continue;
    const char *v = a[2] ? a + 2 : c->argv[++i];
    if (a[1] == 'e') {
      add_action(L, t, A_CODE, v, "=(command line)");
      continue;
    }
    const char *eq = strchr(v, '=');
    lua_pushlstring(L, v, eq ? (size_t)(eq - v) : strlen(v));
    add_action(L, t, A_LIB, eq ? eq + 1 : v, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

/* add_script — the script ("-" is stdin unless after "--"), or with no
** script and no -e / -v: the prompt on a terminal, else stdin */
static void add_script(lua_State *L, int t, const cli *c) {
  if (c->script < c->argc) {
    const char *f = c->argv[c->script];
    if (strcmp(f, "-") == 0 && strcmp(c->argv[c->script - 1], "--") != 0) f = NULL;
    add_action(L, t, A_SCRIPT, f, NULL);
  } else if (!c->has_i && !c->has_e && !c->has_v) {
    if (!isatty(0)) add_action(L, t, A_SCRIPT, NULL, NULL);
    else add_action(L, t, A_REPL, NULL, NULL);
  }
  if (c->has_i) add_action(L, t, A_REPL, NULL, NULL);
}

/* create_arg_table — lua's: script at 0, options below, arguments above */
static void create_arg_table(lua_State *L, const cli *c) {
  int script = c->script < c->argc ? c->script : 0;
  lua_createtable(L, c->argc - script, script + 1);
  for (int i = 0; i < c->argc; i++) {
    lua_pushstring(L, c->argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static void start_main(rt *r, const cli *c) {
  lua_State *L = r->ps[0]->L;
  create_arg_table(L, c);
  lua_pushcfunction(L, main_body);
  lua_newtable(L);
  int t = lua_gettop(L);
  if (r->cfg.debug_addr) add_action(L, t, A_DEBUG, r->cfg.debug_addr, NULL);
  if (!c->no_env) add_init(L, t);
  add_options(L, t, c);
  add_script(L, t, c);
  go_start(L, t - 1, 1, 1);
  lua_settop(L, 0);
}

static void print_version(void) {
  printf("goluarun %s, %s\n", GLR_VERSION, LUA_COPYRIGHT);
  fflush(stdout);
}

int main(int argc, char **argv) {
  cli c = {.argc = argc, .argv = argv};
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (parse_args(&c) < 0) {
    report_bad(&c);
    return EXIT_FAILURE;
  }
  bool prompt_only = c.script >= argc && !c.has_e && !c.has_v && isatty(0);
  if (c.has_v || prompt_only) print_version(); /* lua.c: also before a bare prompt */
  raise_nofile();
  rt_config cfg = runtime_config(&c);
  rt *r = rt_new(&cfg, open_vm, &c);
  start_main(r, &c);
  signal_install(r);
  if (c.profile) r->prof_run_hz = PROF_HZ_DEFAULT; /* rt_run starts it */
  int code = rt_run(r);
  if (c.profile && lprof_write_svg(r, r->ps[0]->L, c.profile) < 0 && code == 0) code = 1;
  fflush(NULL);
  if (atomic_load(&r->close_vms)) rt_free(r);
  return code;
}
