/*
** ludp.c — UDP sockets: net.udp(addr), sock:recvfrom([max]) and
** sock:sendto(data, addr), each one conn operation (conn.h: one receive
** and one send at a time, try / park / re-check). Failures are
** `nil, err`; sendto's also carry 0 bytes sent once it held the lock.
** Owner M only.
*/
#include "ludp.h"

#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>

#include "classes.h"
#include "conn.h"
#include "errstr.h"
#include "goluarun.h"
#include "netaddr.h"

#define UDP_MT "goluarun.udp"
static const char UDP_KEY = 'u';

static const conn_class udp_class = {"udp", NULL, NULL};

static int udp_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)c, (void)s, (void)started;
  return conn_push_fail(L, msg);
}

/* ---------- recvfrom: s->arg is the largest datagram wanted ---------- */

static int recv_try(lua_State *L, conn *c, conn_side *s) {
  size_t max = (size_t)s->arg;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char *b = glr_scratch(L, max ? max : 1);
  int flags = 0;
  ssize_t r = glr_recvfrom(L, c->pd, b, max, (struct sockaddr *)&ss, &sl, &flags);
  if (r == -EAGAIN) return CONN_WANT_READ;
  if (r < 0) return (int)r;
  char abuf[160];
  lua_pushlstring(L, b, (size_t)r);
  lua_pushstring(L, netaddr_format((struct sockaddr *)&ss, sl, abuf, sizeof abuf));
  if (flags & MSG_TRUNC) lua_pushliteral(L, ERRSTR_TRUNCATED);
  else lua_pushnil(L);
  return 3;
}

static const conn_op recv_op = {CONN_DIR_R, GLR_READ, NULL, recv_try, udp_fail, NULL};

static int u_recvfrom(lua_State *L) {
  class_check(L, 1, &UDP_KEY, UDP_MT);
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, max >= 0 && max <= 65536, 2, "size out of range");
  lua_settop(L, 2);
  return conn_op_run(L, &recv_op, (lua_KContext)max);
}

/* ---------- sendto: the data at 2, the address at 3 ---------- */

static int send_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  int n = udp_fail(L, c, s, msg, started);
  if (!started) return n;
  lua_pushinteger(L, 0);
  return n + 1;
}

static int send_ready(lua_State *L, conn *c, conn_side *s) {
  netaddr a;
  int st;
  netaddr_check(L, 3, false, &a, &st);
  if (st != ADDR_NOHOST) return CONN_PENDING;
  return send_fail(L, c, s, ERRSTR_NOHOST, true);
}

static int send_try(lua_State *L, conn *c, conn_side *s) {
  (void)s;
  netaddr a;
  int st;
  netaddr_check(L, 3, false, &a, &st);
  size_t len;
  const char *data = lua_tolstring(L, 2, &len);
  ssize_t r = glr_sendto(L, c->pd, data, len, (struct sockaddr *)&a.ss, a.len);
  if (r == -EAGAIN) return CONN_WANT_WRITE;
  if (r < 0) return (int)r;
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

static const conn_op send_op = {CONN_DIR_W, GLR_WRITE, send_ready, send_try, send_fail, NULL};

static int u_sendto(lua_State *L) {
  class_check(L, 1, &UDP_KEY, UDP_MT);
  luaL_checkstring(L, 2);
  netaddr a;
  int st;
  netaddr_check(L, 3, false, &a, &st); /* raise on malformed addresses now */
  lua_settop(L, 3);
  return conn_op_run(L, &send_op, 0);
}

/* ---------- net.udp ---------- */

static int udp_bind_fail(lua_State *L, int fd, int e, const char *addr) {
  if (fd >= 0) close(fd);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", errstr_of(e), addr);
  return 2;
}

int ludp_new(lua_State *L) {
  netaddr a;
  int st;
  const char *s = netaddr_check(L, 1, true, &a, &st);
  if (st == ADDR_NOHOST)
    return conn_push_fail(L, lua_pushfstring(L, ERRSTR_NOHOST ": %s", s));
  if (a.family == AF_UNIX) return luaL_error(L, "net.udp: unix datagram sockets are not supported");
  int fd = netaddr_socket(a.family, SOCK_DGRAM);
  if (fd < 0) return udp_bind_fail(L, -1, errno, s);
  if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0) return udp_bind_fail(L, fd, errno, s);
  conn_new(L, sizeof(conn), fd, CONN_UDP, &UDP_KEY);
  return 1;
}

void ludp_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"recvfrom", u_recvfrom},     {"sendto", u_sendto},
      {"close", conn_m_close},      {"localaddr", conn_m_localaddr},
      {"addr", conn_m_localaddr},   {"settimeout", conn_m_settimeout},
      {"setdeadline", conn_m_setdeadline}, {"fd", conn_m_fd},
      {NULL, NULL}};
  conn_defclass(L, &UDP_KEY, UDP_MT, methods, &udp_class, &conn_vcopy_stays);
}
