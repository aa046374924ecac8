/*
** lookup.c — net.lookup and name resolution for dial/listen: getaddrinfo
** runs on the worker pool while the goroutine is parked (glr_park), so it
** never blocks a P. The job lives in a userdata on the waiting goroutine's
** stack: the worker writes into it only before glr_ready, the goroutine reads
** it only after.
*/
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/workpool.h"
#include "errstr.h"
#include "goluarun.h"
#include "lookup.h"

#define LOOKUP_MAX 16
#define HOST_MAX 256

typedef struct lookup_job {
  workjob w;
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

static void lookup_done(workjob *w) { glr_ready(((lookup_job *)w)->g); }

int net_lookup_start(lua_State *L, const char *host, lua_KContext ctx, lua_KFunction k) {
  if (strlen(host) >= HOST_MAX) return luaL_error(L, "host name too long");
  if (!glr_canblock(L)) return glr_cannot_block(L, "net.lookup");
  if (glr_cancelled(L)) return glr_raise_cancelled(L);
  lookup_job *j = lua_newuserdatauv(L, sizeof *j, 0);
  memset(j, 0, sizeof *j);
  strcpy(j->host, host);
  j->g = glr_self(L);
  j->w.run = lookup_run;
  j->w.done = lookup_done;
  int e = workpool_submit(&j->w);
  if (e < 0) return luaL_error(L, "net.lookup: cannot start a worker: %s", strerror(-e));
  return glr_park(L, "lookup", ctx, k);
}

int net_lookup_result(lua_State *L, int idx) {
  lookup_job *j = lua_touserdata(L, idx);
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
