/* glr_api.c — the public C API (goluarun.h) on top of the runtime; glr_go
** lives with the goroutines, in gohandle.c. */
#include "goluarun.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "../runtime/group.h"
#include "../runtime/handoff.h"
#include "../runtime/iowait.h"
#include "../runtime/pd.h"
#include "../runtime/sched.h"
#include "../runtime/signal.h"
#include "../runtime/sockio.h"

#define PD(x) ((pollDesc *)(x))

int64_t glr_now(void) { return mono_now(); }

int64_t glr_deadline(double seconds) { return deadline_from_seconds(seconds); }

glr_pd *glr_pd_open(lua_State *L, int fd) {
  pollDesc *pd = pd_alloc(fd);
  pd->owner = vm_p(L);
  return (glr_pd *)pd;
}

void glr_pd_unblock(lua_State *L, glr_pd *pd) {
  if (atomic_load(&PD(pd)->closing)) return;
  iowait_close(vm_p(L), PD(pd));
}

void glr_pd_free(lua_State *L, glr_pd *pd) {
  glr_pd_unblock(L, pd);
  pd_free(PD(pd));
}

int glr_pd_fd(const glr_pd *pd) { return ((const pollDesc *)pd)->fd; }

void glr_pd_tcp(glr_pd *pd) { PD(pd)->drain_ok = true; }

void glr_pd_setdeadline(lua_State *L, glr_pd *pd, int mode, int64_t deadline) {
  iowait_setdeadline(vm_p(L), PD(pd), mode, deadline);
}

static int wake_to_glr(int w) {
  switch (w) {
    case WAKE_TIMEOUT: return GLR_TIMEOUT;
    case WAKE_CLOSED: return GLR_CLOSED;
    case WAKE_CANCELLED: return GLR_CANCELLED;
    case 0: return 0;
    default: return GLR_READY;
  }
}

int glr_pd_check(glr_pd *pd, int mode, int64_t deadline) {
  return wake_to_glr(iowait_check(PD(pd), mode, deadline));
}

int glr_canblock(lua_State *L) { return sched_can_wait(L); }

int glr_cancelled(lua_State *L) { return sched_cancelled(L); }

int glr_raise_cancelled(lua_State *L) { return sched_raise_cancelled(L); }

int glr_cannot_block(lua_State *L, const char *what) {
  if (!vm_p(L)->curg)
    return luaL_error(L, "%s: not inside a goroutine", what);
  if (sched_in_finalizer(L))
    return luaL_error(L, "%s: cannot block inside a __gc finalizer", what);
  return luaL_error(L, "%s: attempt to yield across a C-call boundary "
                    "(called from a C function such as table.sort or a "
                    "metamethod called from C)", what);
}

int glr_waitfd(lua_State *L, glr_pd *pd, int mode, int64_t deadline,
               lua_KContext ctx, lua_KFunction k) {
  if (sched_cancelled(L)) return -ECANCELED; /* the module releases what it holds */
  if (sched_can_park(L)) return iowait_park(L, PD(pd), mode, deadline, ctx, k);
  if (!sched_can_block(L)) return glr_cannot_block(L, "wait on fd");
  int e = iowait_block(L, PD(pd), mode, deadline);
  if (e < 0) return e;
  return k(L, LUA_OK, ctx);
}

int glr_wait_result(lua_State *L, glr_pd *pd, int mode) {
  return wake_to_glr(iowait_result(L, PD(pd), mode));
}

ssize_t glr_read(lua_State *L, glr_pd *pd, void *buf, size_t n) {
  return sock_read(vm_p(L), PD(pd), buf, n);
}

ssize_t glr_writev(lua_State *L, glr_pd *pd, struct iovec *iov, int cnt) {
  return sock_writev(vm_p(L), PD(pd), iov, cnt);
}

ssize_t glr_recvfrom(lua_State *L, glr_pd *pd, void *buf, size_t n,
                     struct sockaddr *sa, socklen_t *salen, int *flags) {
  return sock_recvfrom(vm_p(L), PD(pd), buf, n, sa, salen, flags);
}

ssize_t glr_sendto(lua_State *L, glr_pd *pd, const void *buf, size_t n,
                   const struct sockaddr *sa, socklen_t salen) {
  return sock_sendto(vm_p(L), PD(pd), buf, n, sa, salen);
}

int glr_accept(lua_State *L, glr_pd *pd, struct sockaddr *sa, socklen_t *salen) {
  return sock_accept(vm_p(L), PD(pd), sa, salen);
}

char *glr_scratch(lua_State *L, size_t n) { return sched_scratch(vm_p(L), n); }

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_KFunction k = (lua_KFunction)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return k(L, LUA_YIELD, ctx); /* also when a go.group cancel cut it short */
}

int glr_sleep(lua_State *L, int64_t deadline, lua_KContext ctx, lua_KFunction k) {
  if (sched_cancelled(L)) return k(L, LUA_OK, ctx); /* a cancelled member does not sleep */
  if (!sched_can_wait(L)) return glr_cannot_block(L, "sleep");
  P *p = vm_p(L);
  lua_pushlightuserdata(L, (void *)k);
  sched_arm_gtimer(p, p->curg, deadline);
  sched_park_on(L, WK_SLEEP, NULL);
  return sched_park(L, NULL, NULL, "sleep", PARK_WORLD, ctx, sleep_k);
}

glr_g *glr_self(lua_State *L) { return (glr_g *)vm_p(L)->curg; }

/* commit: parked, unless a glr_ready came first (then run on at once) */
static bool park_commit(G *g, void *arg) {
  (void)arg;
  int expect = PT_NONE;
  if (atomic_compare_exchange_strong(&g->parktoken, &expect, PT_PARKED)) return true;
  atomic_store(&g->parktoken, PT_NONE); /* consume the early token */
  return false;
}

int glr_park(lua_State *L, const char *reason, lua_KContext ctx, lua_KFunction k) {
  if (!sched_can_wait(L)) return glr_cannot_block(L, reason ? reason : "park");
  return sched_park(L, park_commit, NULL, reason ? reason : "park", PARK_WORLD, ctx, k);
}

void glr_ready(glr_g *gg) {
  G *g = (G *)gg;
  for (;;) {
    int st = atomic_load(&g->parktoken);
    if (st == PT_PARKED) {
      if (!atomic_compare_exchange_strong(&g->parktoken, &st, PT_NONE)) continue;
      if (sched_current_p() == g->tag.p) sched_ready(g->tag.p, g, false);
      else sched_ready_remote(g);
      return;
    }
    if (st == PT_NONE && atomic_compare_exchange_strong(&g->parktoken, &st, PT_TOKEN))
      return;
    if (st == PT_TOKEN) return; /* already pending */
  }
}


_Static_assert(sizeof(glr_shutdown_hook) == sizeof(closer), "hook layout");

void glr_shutdown_hook_add(lua_State *L, glr_shutdown_hook *hook) {
  signal_closer_add(vm_p(L), (closer *)(void *)hook);
}

int glr_shutting_down(lua_State *L) { return atomic_load(&vm_p(L)->rt->shutting_down); }

void glr_pd_wake(lua_State *L, glr_pd *pd, int mode) {
  iowait_wake(vm_p(L), PD(pd), mode == GLR_WRITE ? PD_MODE_W : PD_MODE_R, true, WAKE_READY);
}

void glr_shutdown_hook_del(lua_State *L, glr_shutdown_hook *hook) {
  signal_closer_del(vm_p(L), (closer *)(void *)hook);
}

void glr_blocking_enter(lua_State *L) {
  M *m = handoff_current_m();
  if (!m) return; /* a thread of the module's own: nothing to hand off */
  P *p = m->sys_depth > 0 ? m->sys_p : vm_p(L);
  if (m->sys_depth == 0 && (sched_current_p() != p || !p->curg || sched_in_finalizer(L)))
    return; /* not in a goroutine, or in __gc: block in place */
  handoff_enter(p, "C call", DEADLINE_NONE);
}

void glr_blocking_exit(lua_State *L) {
  (void)L; /* not touched: the P may still run elsewhere */
  M *m = handoff_current_m();
  if (m && m->sys_depth > 0) handoff_exit(m->sys_p);
}

int glr_version(void) { return GLR_VERSION_NUM; }

uint64_t glr_goid(lua_State *L) {
  G *g = vm_p(L)->curg;
  return g ? g->id : 0;
}

int glr_procid(lua_State *L) { return vm_p(L)->id; }

int glr_nprocs(lua_State *L) { return vm_p(L)->rt->nprocs; }
