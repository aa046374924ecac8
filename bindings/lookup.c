/*
** lookup.c — net.lookup and name resolution for dial/listen: getaddrinfo
** runs on the worker pool while the goroutine is parked (glr_park), so it
** never blocks a P. The job is malloc'd and shared by two owners, the
** worker and a userdata on the waiting goroutine's stack (`refs`, the last
** one frees it): the worker writes into it only before it claims the
** wake-up, the goroutine reads it only after. The wake-up is claimed once
** (`claimed`), by the worker's done (glr_ready) or by a go.group cancel
** (lookup_detach), which lets the goroutine raise at once while the worker
** finishes getaddrinfo alone.
*/
#include <arpa/inet.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/sched.h"
#include "../runtime/workpool.h"
#include "errstr.h"
#include "goluarun.h"
#include "lookup.h"

#define LOOKUP_MAX 16
#define HOST_MAX 256

#define JOB_MT "goluarun.lookupjob"

typedef struct lookup_job {
  workjob w;              /* first: the pool hands it back as a workjob */
  wcancel cancel;         /* a go.group cancel (lookup_detach) */
  _Atomic int refs;       /* the worker + the waiter's userdata */
  _Atomic int claimed;    /* the wake-up: worker's done or the cancel */
  bool cancelled;         /* owner M: the cancel claimed it */
  glr_g *g;
  char host[HOST_MAX];
  int gai_err;
  int n;
  char addr[LOOKUP_MAX][INET6_ADDRSTRLEN];
} lookup_job;

static void add_unique(lookup_job *j, const char *a) {
  for (int i = 0; i < j->n; i++)
    if (strcmp(j->addr[i], a) == 0) return;
  if (j->n < LOOKUP_MAX) strcpy(j->addr[j->n++], a);
}

static void lookup_run(workjob *w) {
  lookup_job *j = (lookup_job *)w;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  j->gai_err = getaddrinfo(j->host, NULL, &hints, &res);
  for (struct addrinfo *ai = res; ai && !j->gai_err; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN];
    const void *src = ai->ai_family == AF_INET
                          ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                          : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
        inet_ntop(ai->ai_family, src, buf, sizeof buf))
      add_unique(j, buf);
  }
  if (res) freeaddrinfo(res);
}

static void job_unref(lookup_job *j) {
  if (atomic_fetch_sub(&j->refs, 1) == 1) free(j);
}

static bool claim(lookup_job *j) {
  int expect = 0;
  return atomic_compare_exchange_strong(&j->claimed, &expect, 1);
}

static void lookup_done(workjob *w) {
  lookup_job *j = (lookup_job *)w;
  if (claim(j)) glr_ready(j->g);
  job_unref(j);
}

static bool lookup_detach(wcancel *wc) {
  lookup_job *j = (lookup_job *)((char *)wc - offsetof(lookup_job, cancel));
  if (!claim(j)) return false; /* done came first: its wake-up is on its way */
  j->cancelled = true;
  return true;
}

static int job_gc(lua_State *L) {
  lookup_job **u = lua_touserdata(L, 1);
  if (*u) job_unref(*u);
  *u = NULL;
  return 0;
}

/* push_job — a new job and its userdata (the waiter's ref) */
static lookup_job *push_job(lua_State *L, const char *host) {
  lookup_job **u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  if (luaL_newmetatable(L, JOB_MT)) {
    lua_pushcfunction(L, job_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lookup_job *j = calloc(1, sizeof *j);
  if (!j) luaL_error(L, "not enough memory");
  *u = j;
  atomic_store(&j->refs, 1);
  strcpy(j->host, host);
  j->g = glr_self(L);
  j->w.run = lookup_run;
  j->w.done = lookup_done;
  j->cancel.detach = lookup_detach;
  return j;
}

static lookup_job *job_at(lua_State *L, int idx) {
  return *(lookup_job **)luaL_checkudata(L, idx, JOB_MT);
}

static int lookup_park_k(lua_State *L, int status, lua_KContext ctx);

int net_lookup_start(lua_State *L, const char *host, lua_KContext ctx, lua_KFunction k) {
  if (strlen(host) >= HOST_MAX) return luaL_error(L, "host name too long");
  if (!glr_canblock(L)) return glr_cannot_block(L, "net.lookup");
  if (glr_cancelled(L)) return glr_raise_cancelled(L);
  lookup_job *j = push_job(L, host);
  atomic_store(&j->refs, 2); /* the worker's, from here */
  int e = workpool_submit(&j->w);
  if (e < 0) {
    atomic_store(&j->refs, 1);
    return luaL_error(L, "net.lookup: cannot start a worker: %s", strerror(-e));
  }
  lua_pushlightuserdata(L, (void *)k); /* lookup_park_k calls it */
  sched_park_on(L, WK_CALL, &j->cancel);
  return glr_park(L, "lookup", ctx, lookup_park_k);
}

/* lookup_park_k — woken: raise if the cancel claimed it, else k with the
** job on top */
static int lookup_park_k(lua_State *L, int status, lua_KContext ctx) {
  lua_KFunction k = (lua_KFunction)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (job_at(L, -1)->cancelled) return glr_raise_cancelled(L);
  return k(L, status, ctx);
}

int net_lookup_result(lua_State *L, int idx) {
  lookup_job *j = job_at(L, idx);
  if (j->gai_err || j->n == 0) {
    lua_pushnil(L);
    if (j->gai_err == EAI_NONAME || j->gai_err == EAI_NODATA || j->n == 0 ||
        j->gai_err == EAI_FAIL)
      lua_pushfstring(L, ERRSTR_NOHOST ": %s", j->host);
    else
      lua_pushfstring(L, "%s: %s", gai_strerror(j->gai_err), j->host);
    return 2;
  }
  lua_createtable(L, j->n, 0);
  for (int i = 0; i < j->n; i++) {
    lua_pushstring(L, j->addr[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int lookup_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  return net_lookup_result(L, lua_gettop(L));
}

int net_lookup(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
    lua_createtable(L, 1, 0); /* a literal resolves to itself, no worker */
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    return 1;
  }
  return net_lookup_start(L, host, 0, lookup_k);
}
