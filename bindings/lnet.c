/*
** lnet.c — the `net` module: net.dial, net.listen and the listener class,
** net.lookup glue (host names resolve on the worker pool, lookup.c), and
** net.serve (in Lua). Connections are conn.c's; UDP sockets ludp.c's; TLS
** (dial's tls option, listen's, ln:settls) tls.c's.
**
** Invariants: as conn.h (owner M only). A listener's accepts run the conn
** operation skeleton on its read side; under fd exhaustion it backs off
** (the wait ends early and the skeleton tries again), and a listen on a
** Unix path unlinks the socket file when closed, if it is still ours.
*/
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/config.h"
#include "../runtime/sched.h"
#include "args.h"
#include "classes.h"
#include "conn.h"
#include "errstr.h"
#include "gohandle.h"
#include "goluarun.h"
#include "lnet.h"
#include "lpool.h"
#include "lookup.h"
#include "ludp.h"
#include "netaddr.h"
#include "tls.h"

#define LISTENER_MT "goluarun.listener"
static const char LISTENER_KEY = 'l';
static const char DIALOPTS_KEY = 'o'; /* marks net.dial's own copy of opts */
#define BACKOFF_MIN_NS (5 * INT64_C(1000000))
#define BACKOFF_MAX_NS (1000 * INT64_C(1000000))
#define DRAIN_SETTLE_NS (20 * INT64_C(1000000))

typedef struct listener {
  conn c;
  conn_kind accepted_kind; /* const after listen */
  int64_t backoff;         /* accept back-off under fd exhaustion */
  glr_shutdown_hook cl;    /* graceful shutdown drains, then closes it */
  bool draining;           /* the shutdown began: accept what is queued, then close */
  int64_t drain_until;     /* until then an empty queue is waited on (handshakes
                           ** in flight when new SYNs started to be dropped) */
  char *unixpath;          /* path to unlink (if still ours), or NULL */
  tls_config *tls;         /* a ref: accepted conns speak TLS; or NULL */
  dev_t dev;
  ino_t ino;
} listener;

/* ---------- host names ---------- */

/* resolve_k — the lookup for the host of the address at index 1 is done (its
** job is at the top): put "ip:port" at index 1 and start over with `again`.
** IPv4 first, as most servers listen there. */
static int resolve_k(lua_State *L, int status, lua_KContext again) {
  (void)status;
  if (net_lookup_result(L, lua_gettop(L)) == 2) return 2;
  int t = lua_gettop(L);
  const char *pick = NULL;
  for (lua_Integer i = 1; i <= (lua_Integer)luaL_len(L, t); i++) {
    lua_rawgeti(L, t, i);
    const char *a = lua_tostring(L, -1);
    lua_pop(L, 1); /* the list keeps the string alive */
    if (!pick || (strchr(pick, ':') && !strchr(a, ':'))) pick = a;
  }
  const char *port = strrchr(lua_tostring(L, 1), ':') + 1;
  if (strchr(pick, ':')) lua_pushfstring(L, "[%s]:%s", pick, port);
  else lua_pushfstring(L, "%s:%s", pick, port);
  lua_replace(L, 1);
  lua_settop(L, 2);
  return ((lua_CFunction)again)(L);
}

/* resolve_then — index 1 is "name:port" with a host name: resolve it on the
** worker pool (the goroutine parks), then call again(L). */
static int resolve_then(lua_State *L, lua_CFunction again) {
  lua_settop(L, 2);
  const char *s = lua_tostring(L, 1);
  const char *colon = strrchr(s, ':');
  lua_pushlstring(L, s, (size_t)(colon - s));
  return net_lookup_start(L, lua_tostring(L, 3), (lua_KContext)again, resolve_k);
}

/* ---------- dial ---------- */

static bool self_connected(int fd) {
  struct sockaddr_storage a, b;
  socklen_t la = sizeof a, lb = sizeof b;
  if (getsockname(fd, (struct sockaddr *)&a, &la) < 0) return false;
  if (getpeername(fd, (struct sockaddr *)&b, &lb) < 0) return false;
  return la == lb && a.ss_family != AF_UNIX && memcmp(&a, &b, la) == 0;
}

static int dial_fail(lua_State *L, conn *c, int e) {
  conn_close(L, c);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", errstr_of(e), lua_tostring(L, 1));
  return 2;
}

/* check_localaddr — opts.localaddr must be an "ip:port" literal (no name
** lookup: the bind happens right before connect) */
static void check_localaddr(lua_State *L, int idx) {
  netaddr a;
  const char *err = NULL;
  const char *s = luaL_checkstring(L, idx);
  if (netaddr_parse(s, true, &a, &err) != ADDR_OK || a.family == AF_UNIX)
    luaL_error(L, "net.dial: bad localaddr '%s' (want \"ip:port\")", s);
}

/* bind_local — the private opts (index 2) name a local address: bind fd to
** it (port 0: the kernel picks); 0 or -errno */
static int bind_local(lua_State *L, int fd, int family) {
  if (!lua_istable(L, 2)) return 0;
  lua_getfield(L, 2, "localaddr");
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the opts table keeps the string alive */
  if (!s) return 0;
  netaddr a;
  const char *err = NULL;
  netaddr_parse(s, true, &a, &err);
  if (a.family != family) return -EAFNOSUPPORT;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  return bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 ? -errno : 0;
}

/* dial_opts — net.dial(addr, {timeout =, tls =, localaddr =}): a private copy of the
** options, made at the first call (before a host name is resolved, which
** replaces index 1), that also keeps the address as dialled and its host
** part (the default TLS server name). Returns the timeout, < 0 none. */
static double dial_opts(lua_State *L) {
  if (lua_isnoneornil(L, 2)) return -1;
  if (!lua_istable(L, 2)) return args_seconds(L, 2);
  if (lua_rawgetp(L, 2, &DIALOPTS_KEY) == LUA_TNIL) {
    lua_createtable(L, 0, 5);
    lua_getfield(L, 2, "timeout");
    if (!lua_isnil(L, -1)) args_seconds(L, lua_gettop(L));
    lua_setfield(L, -2, "timeout");
    lua_getfield(L, 2, "tls");
    if (lua_toboolean(L, -1)) tls_config_get(L, -1, false); /* a bad config raises now */
    lua_setfield(L, -2, "tls");
    lua_getfield(L, 2, "localaddr");
    if (!lua_isnil(L, -1)) check_localaddr(L, lua_gettop(L));
    lua_setfield(L, -2, "localaddr");
    const char *a = lua_tostring(L, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "addr");
    if (*a == '[') lua_pushlstring(L, a + 1, strcspn(a + 1, "]"));
    else if (strncmp(a, "unix:", 5) == 0) lua_pushnil(L);
    else if (*a == ':') lua_pushliteral(L, "127.0.0.1");
    else lua_pushlstring(L, a, (size_t)(strrchr(a, ':') - a));
    lua_setfield(L, -2, "host");
    lua_pushboolean(L, 1);
    lua_rawsetp(L, -2, &DIALOPTS_KEY);
    lua_replace(L, 2);
  }
  lua_pop(L, 1);
  lua_getfield(L, 2, "timeout");
  double t = lua_isnil(L, -1) ? -1 : lua_tonumber(L, -1);
  lua_pop(L, 1);
  return t;
}

/* dial_done — connected: the conn at cidx, or its TLS handshake first */
static int dial_done(lua_State *L, int cidx) {
  if (!lua_istable(L, 2)) return lua_pushvalue(L, cidx), 1;
  lua_getfield(L, 2, "tls");
  if (!lua_toboolean(L, -1)) return lua_pushvalue(L, cidx), 1;
  tls_config *cfg = tls_config_get(L, -1, false);
  lua_getfield(L, 2, "addr");
  lua_getfield(L, 2, "host");
  conn *c = lua_touserdata(L, cidx);
  return tls_dial(L, cidx, cfg, lua_tostring(L, -2), lua_tostring(L, -1),
                  c->side[CONN_DIR_W].deadline);
}

/* nodelay — TCP conns start with Nagle off, as Go's do: a reply written in
** two pieces (a TLS ticket then the answer, a head then a body) must not
** wait for the peer's delayed ACK (40 ms: TLS handshakes ran at 26/s on
** one connection). conn:setnodelay(false) turns Nagle back on. */
static void nodelay(conn *c) {
  int one = 1;
  if (c->kind == CONN_TCP) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int dial_k(lua_State *L, int status, lua_KContext ctx);

/* dial_wait — the connect goes on: wait for it (dial_k). Where nothing can
** wait (a __gc, outside any goroutine) the conn is closed before the
** error is raised: its fd would otherwise stay open until the collector
** frees the userdata */
static int dial_wait(lua_State *L, conn *c) {
  if (!glr_canblock(L)) { /* (as conn.c's op_wait) */
    conn_close(L, c);
    return glr_cannot_block(L, "wait on fd");
  }
  int e = glr_waitfd(L, c->pd, GLR_WRITE, c->side[CONN_DIR_W].deadline, 0, dial_k);
  return e >= 0 ? e : dial_fail(L, c, -e);
}

static int dial_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  conn *c = lua_touserdata(L, 3);
  int w = glr_wait_result(L, c->pd, GLR_WRITE);
  if (w == GLR_CANCELLED) {
    conn_close(L, c);
    return glr_raise_cancelled(L);
  }
  if (w == GLR_TIMEOUT) return dial_fail(L, c, ETIMEDOUT);
  if (w == GLR_CLOSED) return dial_fail(L, c, ECANCELED);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0) err = EINPROGRESS;
  }
  if (err == EINPROGRESS || err == EALREADY || err == EINTR) return dial_wait(L, c);
  if (err) return dial_fail(L, c, err);
  if (self_connected(c->fd)) return dial_fail(L, c, ECONNREFUSED);
  lua_settop(L, 3);
  return dial_done(L, 3);
}

static int n_dial(lua_State *L) {
  netaddr a;
  int st;
  netaddr_check(L, 1, false, &a, &st);
  if (glr_cancelled(L)) return glr_raise_cancelled(L);
  lua_settop(L, 2);
  double timeout = dial_opts(L);
  if (st == ADDR_NOHOST) return resolve_then(L, n_dial);
  int fd = netaddr_socket(a.family, SOCK_STREAM);
  if (fd < 0) return conn_push_fail(L, errstr_of(errno));
  conn *c = &conn_push(L, fd, a.family == AF_UNIX ? CONN_UNIX : CONN_TCP)->c;
  nodelay(c);
  int be = bind_local(L, fd, a.family);
  if (be < 0) return dial_fail(L, c, -be);
  c->side[CONN_DIR_W].deadline = timeout < 0 ? 0 : glr_deadline(timeout);
  if (glr_pd_check(c->pd, GLR_WRITE, c->side[CONN_DIR_W].deadline) == GLR_TIMEOUT) return dial_fail(L, c, ETIMEDOUT);
  int r;
  do r = connect(fd, (struct sockaddr *)&a.ss, a.len);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS) return dial_fail(L, c, errno);
  if (r == 0 && !self_connected(fd)) return dial_done(L, 3);
  return dial_wait(L, c);
}

/* ---------- listen / accept ---------- */

/* drop_syns — the listening TCP socket drops new SYNs (a classic BPF
** socket filter on the TCP flags; the filter sees the TCP header at offset
** 0): no new handshake starts, those in flight complete and queue. Their
** clients retry the SYN and find the port closed (refused), never a
** connection accepted by the kernel and then reset. */
static void drop_syns(int fd) {
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),             /* TCP flags */
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),           /* SYN | ACK */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),     /* a bare SYN */
      BPF_STMT(BPF_RET | BPF_K, 0),                        /* drop */
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),               /* keep */
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog); /* best effort */
}

/* listener_closer — the graceful shutdown: stop new handshakes, then let
** the acceptor take what the kernel queued (accept_try closes the listener
** at the first empty queue after DRAIN_SETTLE_NS); wake it to look */
static void listener_closer(lua_State *L, glr_shutdown_hook *cl) {
  listener *l = (listener *)((char *)cl - offsetof(listener, cl));
  if (l->c.status != CONN_OPEN) return;
  l->draining = true;
  l->drain_until = glr_now() + DRAIN_SETTLE_NS;
  if (l->accepted_kind == CONN_TCP) drop_syns(l->c.fd);
  glr_pd_wake(L, l->c.pd, GLR_READ);
}

/* drain_empty — accept found the queue empty while draining: wait out the
** settle time, then close */
static int drain_empty(lua_State *L, listener *l, conn_side *s) {
  if (glr_now() < l->drain_until) {
    s->wait_dl = s->deadline && s->deadline < l->drain_until ? s->deadline : l->drain_until;
    return CONN_WANT_READ;
  }
  conn_close(L, &l->c);
  return CONN_AGAIN; /* the loop sees it closed */
}

static void listener_closing(lua_State *L, conn *c) {
  glr_shutdown_hook_del(L, &((listener *)c)->cl);
}

static void listener_destroyed(conn *c) {
  listener *l = (listener *)c;
  tls_config_unref(l->tls);
  l->tls = NULL;
  if (!l->unixpath) return;
  struct stat st;
  if (stat(l->unixpath, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
    unlink(l->unixpath); /* only if it is still our socket file */
  free(l->unixpath);
  l->unixpath = NULL;
}

static const conn_class listener_class = {"listener", listener_closing, listener_destroyed};

/* prepare_unix — remove a stale socket file (nobody accepts on it) */
static int prepare_unix(netaddr *a) {
  const char *path = ((struct sockaddr_un *)&a->ss)->sun_path;
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
  int fd = netaddr_socket(AF_UNIX, SOCK_STREAM);
  if (fd < 0) return -errno;
  int r = connect(fd, (struct sockaddr *)&a->ss, a->len);
  int e = errno;
  close(fd);
  if (r == 0 || e == EAGAIN) return -EADDRINUSE;
  if (e == ECONNREFUSED) unlink(path);
  return 0;
}

static int listen_fail(lua_State *L, int fd, int e, const char *addr) {
  if (fd >= 0) close(fd);
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", errstr_of(e), addr);
  return 2;
}

static int bind_listen(int fd, netaddr *a, int backlog, bool reuseport) {
  int one = 1;
  if (a->family != AF_UNIX) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
      return -errno;
  }
  if (bind(fd, (struct sockaddr *)&a->ss, a->len) < 0) return -errno;
  if (listen(fd, backlog) < 0) return -errno;
  return 0;
}

/* ---------- inherited listeners (LISTEN_FDS: systemd, go.exec's files) ----
** config.c read LISTEN_FDS once at start-up (rt->cfg.listen_fds); fds 3..
** are listening sockets. net.listen adopts the first one bound to the
** address asked for, each at most once in the process (any VM). */

static atomic_bool adopted[CONFIG_MAXLISTENFDS];

static bool same_sockaddr(const struct sockaddr_storage *ss, const netaddr *a) {
  if (ss->ss_family != a->family) return false;
  if (a->family == AF_INET) {
    const struct sockaddr_in *x = (const void *)ss, *y = (const void *)&a->ss;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->family == AF_INET6) {
    const struct sockaddr_in6 *x = (const void *)ss, *y = (const void *)&a->ss;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  const struct sockaddr_un *x = (const void *)ss, *y = (const void *)&a->ss;
  return strcmp(x->sun_path, y->sun_path) == 0;
}

/* listening_on — fd is a listening stream socket bound to a */
static bool listening_on(int fd, const netaddr *a) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int type = 0, acc = 0;
  socklen_t tl = sizeof type, al = sizeof acc;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return false;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) return false;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc) return false;
  return same_sockaddr(&ss, a);
}

static bool wants_fresh_port(const netaddr *a) {
  if (a->family == AF_INET) return ((const struct sockaddr_in *)&a->ss)->sin_port == 0;
  if (a->family == AF_INET6) return ((const struct sockaddr_in6 *)&a->ss)->sin6_port == 0;
  return false;
}

/* adopt — an inherited listening socket bound to a (now ours, non-blocking
** and close-on-exec), or -1 */
static int adopt(lua_State *L, const netaddr *a) {
  int n = vm_p(L)->rt->cfg.listen_fds;
  if (n == 0 || wants_fresh_port(a)) return -1;
  for (int i = 0; i < n; i++) {
    if (atomic_load(&adopted[i]) || !listening_on(3 + i, a)) continue;
    if (atomic_exchange(&adopted[i], true)) continue;
    fcntl(3 + i, F_SETFL, fcntl(3 + i, F_GETFL) | O_NONBLOCK);
    fcntl(3 + i, F_SETFD, FD_CLOEXEC);
    return 3 + i;
  }
  return -1;
}

static int push_listener(lua_State *L, int fd, netaddr *a, tls_config *tls, bool owned);

static int n_listen(lua_State *L) {
  netaddr a;
  int st;
  const char *s = netaddr_check(L, 1, true, &a, &st);
  if (st == ADDR_NOHOST) return resolve_then(L, n_listen);
  int backlog = SOMAXCONN;
  bool reuseport = false;
  tls_config *tls = NULL;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "backlog");
    backlog = (int)luaL_optinteger(L, -1, SOMAXCONN);
    lua_getfield(L, 2, "reuseport");
    reuseport = lua_toboolean(L, -1);
    lua_getfield(L, 2, "tls");
    if (!lua_isnil(L, -1)) tls = tls_config_get(L, -1, true); /* raises before any socket */
    lua_pop(L, 3);
  }
  int fd = adopt(L, &a);
  if (fd >= 0) return push_listener(L, fd, &a, tls, false);
  if (a.family == AF_UNIX) {
    int e = prepare_unix(&a);
    if (e < 0) return listen_fail(L, -1, -e, s);
  }
  fd = netaddr_socket(a.family, SOCK_STREAM);
  if (fd < 0) return listen_fail(L, -1, errno, s);
  int e = bind_listen(fd, &a, backlog, reuseport);
  if (e < 0) return listen_fail(L, fd, -e, s);
  return push_listener(L, fd, &a, tls, true);
}

/* push_listener — the listener object for fd; a Unix socket file we made
** (owned) is unlinked when it closes, an inherited one is left alone */
static int push_listener(lua_State *L, int fd, netaddr *a, tls_config *tls, bool owned) {
  listener *l = (listener *)conn_new(L, sizeof *l, fd, CONN_LISTENER, &LISTENER_KEY);
  l->accepted_kind = a->family == AF_UNIX ? CONN_UNIX : CONN_TCP;
  if (tls) tls_config_ref(tls);
  l->tls = tls;
  if (owned && a->family == AF_UNIX) {
    const char *path = ((struct sockaddr_un *)&a->ss)->sun_path;
    struct stat stt;
    if (stat(path, &stt) == 0) {
      l->unixpath = strdup(path);
      l->dev = stt.st_dev;
      l->ino = stt.st_ino;
    }
  }
  l->cl.fn = listener_closer;
  glr_shutdown_hook_add(L, &l->cl);
  return 1;
}

static void log_exhaustion(int e) {
  static _Atomic int64_t last;
  int64_t now = glr_now();
  if (now - atomic_load(&last) < NS_PER_SEC) return;
  atomic_store(&last, now);
  fprintf(stderr, "goluarun: accept: %s; backing off\n", strerror(e));
}

/* accept_backoff — out of fds (or memory): wait for a readiness or the
** back-off, whichever comes first, then try again */
static int accept_backoff(listener *l, conn_side *s, int e) {
  log_exhaustion(e);
  l->backoff = l->backoff ? l->backoff * 2 : BACKOFF_MIN_NS;
  if (l->backoff > BACKOFF_MAX_NS) l->backoff = BACKOFF_MAX_NS;
  int64_t b = glr_now() + l->backoff;
  s->wait_dl = s->deadline && s->deadline < b ? s->deadline : b;
  return CONN_WANT_READ;
}

static int accept_try(lua_State *L, conn *c, conn_side *s) {
  listener *l = (listener *)c;
  int fd = glr_accept(L, c->pd, NULL, NULL);
  if (fd >= 0) {
    l->backoff = 0;
    conn *nc = &conn_push(L, fd, l->accepted_kind)->c;
    vm_p(L)->st.accepted++; /* owner M: a plain counter (sysmon.h publishes it) */
    nodelay(nc);
    if (l->tls && tls_accept(L, nc, l->tls) < 0) {
      conn_close(L, nc);
      lua_pop(L, 1);
      return accept_backoff(l, s, ENOMEM);
    }
    return 1;
  }
  int e = -fd;
  if (e == EAGAIN) return l->draining ? drain_empty(L, l, s) : CONN_WANT_READ;
  if (e == ECONNABORTED || e == EPROTO || e == EPERM) return CONN_AGAIN;
  if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) return accept_backoff(l, s, e);
  return fd;
}

static int accept_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)c, (void)s, (void)started;
  return conn_push_fail(L, msg);
}

/* the timeout argument (index 2), else the listener's */
static int64_t accept_deadline(lua_State *L, conn *c) {
  double t = lua_isnoneornil(L, 2) ? c->timeout : lua_tonumber(L, 2);
  return t < 0 ? 0 : glr_deadline(t);
}

static const conn_op accept_op = {CONN_DIR_R, GLR_READ, NULL, accept_try, accept_fail,
                                  accept_deadline};

/* l_close — while the shutdown drains the listener and a goroutine accepts,
** the drain closes it (so net.serve's acceptors, told to close when the
** first listener is done, do not reset what their own queue holds) */
static int l_close(lua_State *L) {
  listener *l = class_check(L, 1, &LISTENER_KEY, LISTENER_MT);
  if (l->draining && l->c.side[CONN_DIR_R].owner) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return conn_m_close(L);
}

static int l_accept(lua_State *L) {
  class_check(L, 1, &LISTENER_KEY, LISTENER_MT);
  if (!lua_isnoneornil(L, 2)) args_seconds(L, 2);
  lua_settop(L, 2);
  return conn_op_run(L, &accept_op, 0);
}

/* ln:settls(T) — handshakes from now on use T; live conns keep theirs */
static int l_settls(lua_State *L) {
  listener *l = class_check(L, 1, &LISTENER_KEY, LISTENER_MT);
  tls_config *cfg = tls_config_get(L, 2, true);
  tls_config_ref(cfg);
  tls_config_unref(l->tls);
  l->tls = cfg;
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------- net.serve: in Lua (lua/goluarun/serve.lua) ---------- */

/* a tail call, so error levels in goluarun.serve point at net.serve's caller */
static const char serve_src[] =
    "return function(...) return require('goluarun.serve').serve(...) end\n";

/* ---------- net.pool, net.defaultpool: in Lua (lua/goluarun/pool.lua) ---------- */

/* loaded at their first use, so a script that never pools pays nothing */
static const char pool_src[] =
    "local net = ...\n"
    "return setmetatable(net, {__index = function(t, k)\n"
    "  if k ~= 'pool' and k ~= 'defaultpool' then return nil end\n"
    "  local m = require('goluarun.pool')\n"
    "  rawset(t, 'pool', m.new)\n"
    "  rawset(t, 'defaultpool', m.default())\n"
    "  return rawget(t, k)\n"
    "end})\n";

/* ---------- module ---------- */

static const luaL_Reg listener_methods[] = {
    {"accept", l_accept},     {"close", l_close}, {"addr", conn_m_localaddr},
    {"settimeout", conn_m_settimeout}, {"setdeadline", conn_m_setreaddeadline},
    {"fd", conn_m_fd},        {"settls", l_settls}, {NULL, NULL}};

static const luaL_Reg net_funcs[] = {
    {"dial", n_dial}, {"listen", n_listen}, {"udp", ludp_new},
    {"lookup", net_lookup},
    /* net._serve_start(fn, conn): net.serve's goroutine per conn, which
    ** closes the conn when fn ends (gohandle.c's g_entry_closing) */
    {"_serve_start", go_run_closing}, {NULL, NULL}};

int luaopen_net(lua_State *L) {
  conn_open(L);
  tls_open(L);
  conn_defclass(L, &LISTENER_KEY, LISTENER_MT, listener_methods, &listener_class,
                &conn_vcopy_stays);
  ludp_open(L);
  luaL_newlib(L, net_funcs);
  if (luaL_loadbuffer(L, serve_src, sizeof serve_src - 1, "=net.serve") != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 1);
  lua_setfield(L, -2, "serve");
  lpool_open(L);
  if (luaL_loadbuffer(L, pool_src, sizeof pool_src - 1, "=net.pool") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
  return 1;
}
