/*
** lgo.c — the `go` module: the go table (go(fn, ...) and go.wait come from
** gohandle.c, go.spawn from lspawn.c, channels, select and after from
** lchan.c, shared channels from lschan.c), sleep, yield, id..., stats and
** exit. Everything here runs on the M holding the VM's P.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/memlimit.h"
#include "../runtime/pd.h"
#include "../runtime/schan.h"
#include "../runtime/sched.h"
#include "../runtime/sysmon.h"
#include "args.h"
#include "conn.h"
#include "gohandle.h"
#include "goluarun.h"
#include "lchan.h"
#include "lexec.h"
#include "lgo.h"
#include "lprof.h"
#include "lgroup.h"
#include "lschan.h"
#include "lshared.h"
#include "lspawn.h"
#include "lsignal.h"

/* ---------- helpers ---------- */

static G *cur_g(lua_State *L, const char *what) {
  G *g = vm_p(L)->curg;
  if (!g) luaL_error(L, "%s: not inside a goroutine", what);
  return g;
}

static void need_wait(lua_State *L, const char *what) {
  if (!sched_can_wait(L)) glr_cannot_block(L, what);
}

/* ---------- goroutines ---------- */

static int resume0_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

/* sleep_k — glr_sleep ends early for a cancelled go.group member: raise */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (sched_cancelled(L)) return sched_raise_cancelled(L);
  return 0;
}

/* go.yield() and go.sleep(0) where Lua cannot yield: nothing to give the
** P to but a hand-off, which would cost more than the call: go on */
static int go_yield(lua_State *L) {
  cur_g(L, "go.yield");
  need_wait(L, "go.yield");
  if (!sched_can_park(L)) return 0;
  return sched_gosched(L, 0, resume0_k);
}

static int go_sleep(lua_State *L) {
  double s = args_seconds(L, 1);
  cur_g(L, "go.sleep");
  need_wait(L, "go.sleep");
  if (s <= 0) return sched_can_park(L) ? sched_gosched(L, 0, resume0_k) : 0;
  sched_check_cancel(L);
  return glr_sleep(L, deadline_from_seconds(s), 0, sleep_k);
}

static int go_now(lua_State *L) {
  lua_pushnumber(L, (double)mono_now() / 1e9);
  return 1;
}

/* go.time() — wall-clock seconds since the epoch (CLOCK_REALTIME, with
** sub-second precision); go.now() is monotonic and not a date */
static int go_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  return 1;
}

static int go_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)glr_goid(L));
  return 1;
}

static int go_procid(lua_State *L) {
  lua_pushinteger(L, glr_procid(L));
  return 1;
}

static int go_nprocs(lua_State *L) {
  lua_pushinteger(L, glr_nprocs(L));
  return 1;
}


/* ---------- stats, exit ---------- */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* set_io — the conn, byte and memory figures (per P and in total) */
static void set_io(lua_State *L, const proc_stats *s) {
  set_int(L, "timers", s->timers);
  set_int(L, "lua_memory", (lua_Integer)s->lua_bytes);
  set_int(L, "conns", (lua_Integer)(s->st.conns_opened - s->st.conns_closed));
  set_int(L, "conns_opened", (lua_Integer)s->st.conns_opened);
  set_int(L, "conns_closed", (lua_Integer)s->st.conns_closed);
  set_int(L, "accepted", (lua_Integer)s->st.accepted);
  set_int(L, "bytes_read", (lua_Integer)s->st.bytes_read);
  set_int(L, "bytes_written", (lua_Integer)s->st.bytes_written);
  set_int(L, "tls_handshakes", (lua_Integer)s->st.handshakes);
  set_int(L, "tls_handshake_failures", (lua_Integer)s->st.handshake_failures);
}

static void push_proc_stats(lua_State *L, int id, const proc_stats *s) {
  lua_createtable(L, 0, 18);
  set_io(L, s);
  set_int(L, "netpoll_waiters", s->npollwait);
  set_int(L, "goroutines", s->goroutines);
  set_int(L, "runq", s->runq);
  set_int(L, "id", id);
  set_int(L, "portable", s->portable);
  set_int(L, "spawned", (lua_Integer)s->st.spawned);
  set_int(L, "steals", (lua_Integer)s->st.steals);
  set_int(L, "preemptions", (lua_Integer)s->st.preemptions);
  set_int(L, "handoffs", (lua_Integer)s->st.handoffs);
}

static int go_stats(lua_State *L) {
  P *self = vm_p(L);
  rt *r = self->rt;
  sched_publish(self);
  memlimit_flush(&self->mem); /* this VM's count is exact; others lag a batch */
  proc_stats *per_p = lua_newuserdatauv(L, (size_t)r->nprocs * sizeof *per_p, 0);
  rt_stats s;
  sysmon_stats(r, &s, per_p);
  lua_newtable(L);
  lua_createtable(L, r->nprocs, 0);
  for (int i = 0; i < r->nprocs; i++) {
    push_proc_stats(L, i, &per_p[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "procs");
  set_int(L, "goroutines", s.total.goroutines);
  set_int(L, "runnable", s.total.runq);
  set_int(L, "threads", s.threads); /* Ms, counting pool threads for hand-offs */
  set_int(L, "netpoll_waiters", s.total.npollwait);
  set_int(L, "spawned", (lua_Integer)s.total.st.spawned);
  set_int(L, "coroutines_created", (lua_Integer)s.total.st.created);
  set_int(L, "steals", (lua_Integer)s.total.st.steals);
  set_int(L, "preemptions", (lua_Integer)s.total.st.preemptions);
  set_int(L, "handoffs", (lua_Integer)s.total.st.handoffs);
  set_io(L, &s.total);
  set_int(L, "idleprocs", s.idleprocs);
  size_t alloc, inuse;
  pd_cache_stats(&alloc, &inuse);
  set_int(L, "polldescs", (lua_Integer)inuse);
  set_int(L, "sharedchans", schan_live());
  set_int(L, "memory", (lua_Integer)memlimit_inuse()); /* bytes held by every VM */
  set_int(L, "memlimit", (lua_Integer)memlimit_limit()); /* GOLUA_MEMLIMIT; 0: none */
  return 1;
}

static int exit_code_arg(lua_State *L, int idx) {
  if (lua_isboolean(L, idx)) return lua_toboolean(L, idx) ? EXIT_SUCCESS : EXIT_FAILURE;
  return (int)luaL_optinteger(L, idx, EXIT_SUCCESS);
}

/* do_exit — stop the runtime; the calling goroutine never runs again */
static int do_exit(lua_State *L, int code, bool close_vms) {
  rt *r = vm_p(L)->rt;
  if (!sched_can_park(L)) { /* cannot leave the VM cleanly from here */
    fflush(NULL);
    _exit(code);
  }
  rt_stop(r, STOP_EXIT, code, close_vms);
  return sched_park(L, NULL, NULL, "exit", PARK_WORLD, 0, resume0_k);
}

static int go_exit(lua_State *L) { return do_exit(L, exit_code_arg(L, 1), true); }

/* os.exit(code, true) closes the state as lua's does: the calling
** goroutine's pending to-be-closed variables first (lua_close closes the
** main thread's; a goroutine's own thread is that here), called directly
** from it (not from a coroutine it resumed), then the VMs and their
** finalizers once the runtime has stopped. The reset unwinds this call's
** own frame: only the C locals are used after it. */
static int os_exit(lua_State *L) {
  int code = exit_code_arg(L, 1);
  bool close = lua_toboolean(L, 2);
  P *p = vm_p(L);
  G *g = p->curg;
  if (close && !g && atomic_load(&p->rt->stopping) != STOP_NONE) {
    /* a finalizer run by the final close of the VMs: as lua's nested
    ** lua_close, the remaining finalizers of this VM run, then exit */
    lua_close(L);
    fflush(NULL);
    _exit(code);
  }
  if (close && g && g->L == L && sched_can_park(L)) lua_resetthread(L);
  return do_exit(L, code, close);
}


/* ---------- module ---------- */

static const luaL_Reg go_funcs[] = {
    {"wait", go_wait},     {"sleep", go_sleep},   {"yield", go_yield},
    {"now", go_now},       {"id", go_id},         {"procid", go_procid},
    {"nprocs", go_nprocs}, {"stats", go_stats},   {"exit", go_exit},
    {"time", go_time},     {"start", go_run},     {NULL, NULL}};

int luaopen_go(lua_State *L) {
  go_open_handles(L);
  conn_open_rt(L);
  luaL_newlib(L, go_funcs);
  lchan_open(L);
  lshared_open(L);
  lschan_open(L);
  lspawn_open(L);
  lexec_open(L);
  lsignal_open(L);
  lprof_open(L);
  lgroup_open(L);
  lua_newtable(L);
  go_push_call(L);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  /* os.exit stops the runtime cleanly */
  if (lua_getglobal(L, "os") == LUA_TTABLE) {
    lua_pushcfunction(L, os_exit);
    lua_setfield(L, -2, "exit");
  }
  lua_pop(L, 1);
  return 1;
}
