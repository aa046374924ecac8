/*
** timerfd.c — an example goluarun C module, built only on <goluarun.h>.
**
**   local timerfd = require "timerfd"
**   local t <close> = timerfd.ticker(0.01)   -- a Linux timerfd, period 10 ms
**   local n, err = t:wait([timeout])         -- parks; ticks since last wait
**   local r, w = timerfd.pipe()              -- a pipe as two goluarun conns
**   local g = timerfd.go(fn, ...)            -- glr_go: a goroutine from C
**   timerfd.thread_wake(s)                   -- parks; a pthread readies us
**   timerfd.blocking_sleep(s)                -- nanosleep inside glr_blocking_*
**   timerfd.whoami()                         -- goroutine id, P, number of Ps
**
** It shows the three things a module needs: parking on an fd it owns with a
** deadline (glr_waitfd / glr_wait_result, continuation style), waking a
** goroutine from another thread (glr_park / glr_ready), and wrapping an fd in
** a connection object (glr_conn_wrap). No global state: C modules may run in
** several VMs on several threads at once.
*/
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <goluarun.h>
#include <lauxlib.h>
#include <lua.h>

#define TICKER_MT "timerfd.ticker"

typedef struct ticker {
  int fd;
  glr_pd *pd;     /* NULL once closed */
  int waiting;    /* a goroutine is inside wait() (it owns pd's read side) */
  int closed;
} ticker;

static ticker *check_ticker(lua_State *L) {
  return luaL_checkudata(L, 1, TICKER_MT);
}

static void ticker_release(lua_State *L, ticker *t) {
  if (t->pd && !t->waiting) { /* nobody between glr_waitfd and its result */
    glr_pd_free(L, t->pd);
    t->pd = NULL;
    close(t->fd);
    t->fd = -1;
  }
}

static int t_close(lua_State *L) {
  ticker *t = check_ticker(L);
  if (!t->closed) {
    t->closed = 1;
    if (t->pd) glr_pd_unblock(L, t->pd); /* wakes a waiter with GLR_CLOSED */
    ticker_release(L, t);
  }
  return 0;
}

static int fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext deadline);

/* wait_loop — try the read; park on EAGAIN. ctx carries the deadline. */
static int wait_loop(lua_State *L, ticker *t, int64_t deadline) {
  for (;;) {
    int chk = glr_pd_check(t->pd, GLR_READ, deadline);
    if (chk == GLR_CLOSED || t->closed) break;
    if (chk == GLR_TIMEOUT) {
      t->waiting = 0;
      return fail(L, "timeout");
    }
    uint64_t ticks;
    ssize_t r = read(t->fd, &ticks, sizeof ticks);
    if (r == (ssize_t)sizeof ticks) {
      t->waiting = 0;
      lua_pushinteger(L, (lua_Integer)ticks);
      return 1;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno != EAGAIN) {
      t->waiting = 0;
      return fail(L, strerror(errno));
    }
    int e = glr_waitfd(L, t->pd, GLR_READ, deadline, (lua_KContext)deadline, wait_k);
    if (e >= 0) return e;
    t->waiting = 0;
    return fail(L, strerror(-e));
  }
  t->waiting = 0;
  ticker_release(L, t);
  return fail(L, "closed");
}

static int wait_k(lua_State *L, int status, lua_KContext deadline) {
  (void)status;
  ticker *t = check_ticker(L);
  int w = glr_wait_result(L, t->pd, GLR_READ);
  if (w == GLR_CLOSED || t->closed) {
    t->waiting = 0;
    ticker_release(L, t);
    return fail(L, "closed");
  }
  if (w == GLR_TIMEOUT) {
    t->waiting = 0;
    return fail(L, "timeout");
  }
  return wait_loop(L, t, (int64_t)deadline); /* GLR_READY: try again */
}

static int t_wait(lua_State *L) {
  ticker *t = check_ticker(L);
  int64_t deadline = lua_isnoneornil(L, 2) ? 0 : glr_deadline(luaL_checknumber(L, 2));
  if (t->closed) return fail(L, "closed");
  if (t->waiting) return luaL_error(L, "ticker: another goroutine is waiting");
  lua_settop(L, 1);
  t->waiting = 1;
  return wait_loop(L, t, deadline);
}

static int t_gc(lua_State *L) {
  ticker *t = check_ticker(L);
  t->closed = 1;
  t->waiting = 0; /* unreachable: no goroutine can be inside wait() */
  ticker_release(L, t);
  return 0;
}

static int l_ticker(lua_State *L) {
  double period = luaL_checknumber(L, 1);
  luaL_argcheck(L, period > 0 && period < 1e6, 1, "period out of range");
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return fail(L, strerror(errno));
  struct itimerspec its;
  its.it_interval.tv_sec = (time_t)period;
  its.it_interval.tv_nsec = (long)((period - (double)(time_t)period) * 1e9);
  its.it_value = its.it_interval;
  if (timerfd_settime(fd, 0, &its, NULL) < 0) {
    int e = errno;
    close(fd);
    return fail(L, strerror(e));
  }
  ticker *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  t->fd = fd;
  t->pd = glr_pd_open(L, fd);
  if (!t->pd) {
    close(fd);
    return luaL_error(L, "ticker: out of memory");
  }
  luaL_setmetatable(L, TICKER_MT);
  return 1;
}

/* pipe() — two conns over a pipe: conn:read/write and deadlines work */
static int l_pipe(lua_State *L) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return fail(L, strerror(errno));
  if (glr_conn_wrap(L, fds[0], "stream") != 1) {
    close(fds[1]);
    return 2;
  }
  if (glr_conn_wrap(L, fds[1], "stream") != 1) return 2; /* r is GC'd */
  return 2;
}

static int l_go(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  glr_go(L, lua_gettop(L) - 1);
  return 1;
}

/* thread_wake(s): park; a detached pthread sleeps s and readies us */
typedef struct wake_job {
  glr_g *g;
  double secs;
} wake_job;

static void *wake_thread(void *arg) {
  wake_job *j = arg;
  struct timespec ts = {(time_t)j->secs, (long)((j->secs - (double)(time_t)j->secs) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  glr_ready(j->g); /* any thread may do this */
  free(j);
  return NULL;
}

static int thread_wake_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_pushboolean(L, 1);
  return 1;
}

static int l_thread_wake(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  glr_g *g = glr_self(L);
  if (!g) return luaL_error(L, "thread_wake: not in a goroutine");
  if (!glr_canblock(L)) return luaL_error(L, "thread_wake: cannot block here");
  wake_job *j = malloc(sizeof *j);
  if (!j) return luaL_error(L, "out of memory");
  j->g = g;
  j->secs = s;
  pthread_t th;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&th, &at, wake_thread, j);
  pthread_attr_destroy(&at);
  if (e != 0) {
    free(j);
    return fail(L, strerror(e));
  }
  /* the wake-up may come before we are off the stack: glr_park keeps it */
  return glr_park(L, "timerfd.thread_wake", 0, thread_wake_k);
}

static int l_blocking_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  glr_blocking_enter(L);
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
  glr_blocking_exit(L);
  return 0;
}

static int l_whoami(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)glr_goid(L));
  lua_pushinteger(L, glr_procid(L));
  lua_pushinteger(L, glr_nprocs(L));
  return 3;
}

static const luaL_Reg ticker_methods[] = {{"wait", t_wait}, {"close", t_close}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"ticker", l_ticker}, {"pipe", l_pipe}, {"go", l_go},
    {"thread_wake", l_thread_wake}, {"blocking_sleep", l_blocking_sleep},
    {"whoami", l_whoami}, {NULL, NULL}};

int luaopen_timerfd(lua_State *L);

int luaopen_timerfd(lua_State *L) {
  if (glr_version() / 100 != GLR_VERSION_NUM / 100)
    return luaL_error(L, "timerfd: built for goluarun %s, running %d", GLR_VERSION, glr_version());
  luaL_newmetatable(L, TICKER_MT);
  luaL_newlib(L, ticker_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, t_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, t_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushstring(L, GLR_VERSION);
  lua_setfield(L, -2, "goluarun_version");
  return 1;
}
