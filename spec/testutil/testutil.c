/*
** testutil.c -- a tiny Lua C module used by the busted specs only.
**
** It gives the specs what plain Lua cannot see: the number of open fds,
** the nofile limit, SO_LINGER 0 (close sends RST), process CPU time,
** dup/close of raw fds, and a signal storm (a detached thread that sends
** a no-op signal installed WITHOUT SA_RESTART, so system calls of every
** thread see EINTR).
**
** It also has a blocking call bracketed by glr_blocking_enter / exit that
** counts how many such calls are in flight at once (the hand-off lets
** several goroutines of one VM block together, up to the M cap).
**
** alloc_limit(bytes) wraps the calling VM's allocator so that growth past
** `bytes` more than in use now fails (Lua's "not enough memory"), to test
** what the runtime does when a goroutine runs out of memory.
**
** Thread safety: the module may be loaded in several VMs on several
** threads at once. Its only global state is the storm's and the in-flight
** counters, every field of it atomic; a second storm while one runs is
** refused.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "goluarun.h"

int luaopen_testutil(lua_State *L);

/* fail, msg, errno -- the Lua library convention */
static int tu_fail(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

static int tu_fdarg(lua_State *L, int idx) {
  lua_Integer fd = luaL_checkinteger(L, idx);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, idx, "bad file descriptor");
  return (int)fd;
}

/* nfds() -- entries of /proc/self/fd, minus the one used to read it */
static int tu_nfds(lua_State *L) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return tu_fail(L, errno);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] != '.')
      n++;
  }
  closedir(d);
  lua_pushinteger(L, n - 1);
  return 1;
}

/* getnofile() -> soft, hard (-1 for unlimited) */
static void tu_pushrlim(lua_State *L, rlim_t v) {
  if (v == RLIM_INFINITY)
    lua_pushinteger(L, -1);
  else
    lua_pushinteger(L, (lua_Integer)v);
}

static int tu_getnofile(lua_State *L) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return tu_fail(L, errno);
  tu_pushrlim(L, rl.rlim_cur);
  tu_pushrlim(L, rl.rlim_max);
  return 2;
}

/* setnofile(soft) -> true | nil, err */
static int tu_setnofile(lua_State *L) {
  lua_Integer soft = luaL_checkinteger(L, 1);
  luaL_argcheck(L, soft >= 0, 1, "negative limit");
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return tu_fail(L, errno);
  rl.rlim_cur = (rlim_t)soft;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return tu_fail(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* linger0(fd) -- SO_LINGER on with 0 s: close() then sends RST */
static int tu_linger0(lua_State *L) {
  int fd = tu_fdarg(L, 1);
  struct linger lg;
  lg.l_onoff = 1;
  lg.l_linger = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
    return tu_fail(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* cputime() -- user + system CPU seconds of the whole process */
static int tu_cputime(lua_State *L) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return tu_fail(L, errno);
  double s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  lua_pushnumber(L, s);
  return 1;
}

/* dup(fd) -> newfd | nil, err  (close-on-exec, so children see nothing) */
static int tu_dup(lua_State *L) {
  int fd = tu_fdarg(L, 1);
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0)
    return tu_fail(L, errno);
  lua_pushinteger(L, nfd);
  return 1;
}

/* close(fd) -> true | nil, err */
static int tu_close(lua_State *L) {
  int fd = tu_fdarg(L, 1);
  if (close(fd) != 0)
    return tu_fail(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

static int tu_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* kill(pid, signo) -> true | nil, err: kill(2) itself, so a test that
** times a signal's effect does not count the start of a kill(1) process */
static int tu_kill(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = (int)luaL_checkinteger(L, 2);
  if (pid <= 0) return luaL_argerror(L, 1, "a process id expected");
  if (kill(pid, sig) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** Signal storm. storm_running is set by the starter and cleared by the
** thread when it ends; storm_sent counts kill() calls of the current (or
** last) storm. Both atomic: read from any VM's thread.
*/
static atomic_bool storm_running;
static atomic_long storm_sent;

struct storm_args {
  int signo;
  long interval_ns;
  long total_ns;
};

static struct storm_args storm_cfg; /* written before the thread starts */

static void tu_noop_handler(int signo) {
  (void)signo;
}

static long tu_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void *tu_storm_main(void *arg) {
  const struct storm_args *a = arg;
  long start = tu_mono_ns();
  pid_t pid = getpid();
  while (tu_mono_ns() - start < a->total_ns) {
    if (kill(pid, a->signo) == 0)
      atomic_fetch_add(&storm_sent, 1);
    struct timespec ts;
    ts.tv_sec = a->interval_ns / 1000000000L;
    ts.tv_nsec = a->interval_ns % 1000000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
  }
  atomic_store(&storm_running, false);
  return NULL;
}

/* signal_storm(signo, interval_ms, duration_s) -> true | nil, err */
static int tu_signal_storm(lua_State *L) {
  lua_Integer signo = luaL_checkinteger(L, 1);
  lua_Number interval_ms = luaL_checknumber(L, 2);
  lua_Number duration_s = luaL_checknumber(L, 3);
  luaL_argcheck(L, signo > 0 && signo < 65, 1, "bad signal number");
  luaL_argcheck(L, interval_ms > 0 && interval_ms < 1e6, 2, "bad interval");
  luaL_argcheck(L, duration_s > 0 && duration_s < 3600, 3, "bad duration");
  bool expected = false;
  if (!atomic_compare_exchange_strong(&storm_running, &expected, true)) {
    lua_pushnil(L);
    lua_pushliteral(L, "a signal storm is already running");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = tu_noop_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
  if (sigaction((int)signo, &sa, NULL) != 0) {
    int err = errno;
    atomic_store(&storm_running, false);
    return tu_fail(L, err);
  }
  storm_cfg.signo = (int)signo;
  storm_cfg.interval_ns = (long)(interval_ms * 1e6);
  storm_cfg.total_ns = (long)(duration_s * 1e9);
  atomic_store(&storm_sent, 0);

  pthread_attr_t attr;
  pthread_t th;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* the storm thread must not take the signal itself: block it there */
  sigset_t all, old;
  sigemptyset(&all);
  sigaddset(&all, (int)signo);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&th, &attr, tu_storm_main, &storm_cfg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    atomic_store(&storm_running, false);
    return tu_fail(L, rc);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int tu_storm_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)atomic_load(&storm_sent));
  return 1;
}

static int tu_storm_running(lua_State *L) {
  lua_pushboolean(L, atomic_load(&storm_running));
  return 1;
}

static atomic_int block_inflight, block_max;

/* block_sleep(s) -- nanosleep s seconds inside glr_blocking_enter/exit */
static int tu_block_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  int now = atomic_fetch_add(&block_inflight, 1) + 1;
  int seen = atomic_load(&block_max);
  while (now > seen && !atomic_compare_exchange_weak(&block_max, &seen, now)) {
  }
  glr_blocking_enter(L);
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
  glr_blocking_exit(L);
  atomic_fetch_sub(&block_inflight, 1);
  return 0;
}

/* block_max([reset]) -- most block_sleep calls seen in flight at once */
static int tu_block_max(lua_State *L) {
  lua_pushinteger(L, atomic_load(&block_max));
  if (lua_toboolean(L, 1)) atomic_store(&block_max, 0);
  return 1;
}

/* alloc_limit: the VM's own allocator, and the bytes it may still grow by
** (owner M only: a VM's allocator runs on the M holding its P) */
typedef struct limited_alloc {
  lua_Alloc real;
  void *real_ud;
  long long budget;
} limited_alloc;

static void *limited(void *ud, void *ptr, size_t osize, size_t nsize) {
  limited_alloc *la = ud;
  size_t old = ptr ? osize : 0;
  if (nsize > old && (long long)(nsize - old) > la->budget) return NULL;
  void *np = la->real(la->real_ud, ptr, osize, nsize);
  if (np || nsize == 0) la->budget -= (long long)nsize - (long long)old;
  return np;
}

/* pin this module: lua_close unloads C modules before the last frees,
** which still come through `limited` */
static void pin_self(void) {
  Dl_info info;
  if (dladdr((void *)pin_self, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static int tu_alloc_limit(lua_State *L) {
  static limited_alloc la; /* one limited VM per process: tests only */
  pin_self();
  la.budget = (long long)luaL_checkinteger(L, 1);
  if (lua_getallocf(L, NULL) != limited) la.real = lua_getallocf(L, &la.real_ud);
  lua_setallocf(L, limited, &la);
  return 0;
}

static const luaL_Reg tu_funcs[] = {
  {"alloc_limit", tu_alloc_limit},
  {"block_sleep", tu_block_sleep},
  {"block_max", tu_block_max},
  {"nfds", tu_nfds},
  {"getnofile", tu_getnofile},
  {"setnofile", tu_setnofile},
  {"linger0", tu_linger0},
  {"cputime", tu_cputime},
  {"dup", tu_dup},
  {"close", tu_close},
  {"getpid", tu_getpid},
  {"kill", tu_kill},
  {"signal_storm", tu_signal_storm},
  {"storm_count", tu_storm_count},
  {"storm_running", tu_storm_running},
  {NULL, NULL}
};

int luaopen_testutil(lua_State *L) {
  luaL_newlib(L, tu_funcs);
  return 1;
}
