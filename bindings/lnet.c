/*
** lnet.c — the `net` module: TCP/Unix connections and listeners, UDP
** sockets, written on the public C API (goluarun.h) only.
**
** Invariants (all fields owner M only: a conn belongs to one VM):
**  - One operation at a time per direction (Go's fdMutex): the goroutine in
**    rowner/wowner runs the read/accept or write; others queue FIFO in
**    rwait/wwait and get ownership handed to them. nops counts owners; the
**    pollDesc and fd are released only when the conn is closed AND nops is 0,
**    so a woken owner can always finish its wait on a live pollDesc.
**  - close() marks closed, wakes every waiter (pollDesc and queues) with
**    "closed"; the fd is closed by close() itself or by the last owner.
**  - The read buffer holds bytes read but not yet returned; it is freed
**    whenever it empties, so an idle connection keeps no buffer.
*/
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "bindings.h"
#include "goluarun.h"
#include "netaddr.h"

#define CONN_MT "goluarun.conn"
#define LISTENER_MT "goluarun.listener"
#define UDP_MT "goluarun.udp"
static const char CONN_KEY = 'c', LISTENER_KEY = 'l', UDP_KEY = 'u';
#define DEFAULT_LIMIT (64 * 1024)
#define READ_CHUNK (64 * 1024)
#define READ_STEP_MAX (1024 * 1024) /* buffer growth per read at most */
#define MAX_IOV 64
#define BACKOFF_MIN_NS (5 * INT64_C(1000000))
#define BACKOFF_MAX_NS (1000 * INT64_C(1000000))

/* a goroutine queued for an operation lock; the node is a userdata on the
** waiting goroutine's own stack, so it lives exactly as long as the wait */
typedef struct waiter {
  glr_g *g;
  struct waiter *next;
} waiter;

typedef struct waitlist {
  waiter *head, *tail;
} waitlist;

typedef struct conn {
  glr_pd *pd;       /* NULL once destroyed */
  int fd;
  int kind;
  int accepted_kind; /* listener: the kind of the conns it accepts */
  bool closed;
  int nops;
  glr_g *rowner, *wowner;
  waitlist rwait, wwait;
  char *buf;        /* read buffer: bytes buf[boff .. boff+blen) */
  size_t boff, blen, bcap, scan;
  size_t limit;
  double timeout;   /* per-operation idle timeout, < 0 none */
  int64_t rop_dl, wop_dl;
  int64_t backoff;  /* accept back-off under fd exhaustion */
  glr_shutdown_hook cl; /* listeners: graceful shutdown */
  char *unixpath;   /* listener: path to unlink (if still ours) */
  dev_t dev;
  ino_t ino;
} conn;

enum { RD_CHUNK = 0, RD_EXACT, RD_LINE, RD_LINEK, RD_ALL, RD_UNTIL };
enum { DIR_R = 0, DIR_W = 1 };

/* ---------- errors ---------- */

static const char *errstr(int e) {
  switch (e) {
    case ECONNRESET: return "connection reset";
    case EPIPE: return "broken pipe";
    case ECONNREFUSED: return "connection refused";
    case ETIMEDOUT: return "timeout";
    case EADDRINUSE: return "address in use";
    default: return strerror(e);
  }
}

static int push_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* ---------- conn lifetime ---------- */

static conn *new_conn(lua_State *L, int fd, int kind, const void *mtkey) {
  conn *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd = fd;
  c->kind = kind;
  c->limit = DEFAULT_LIMIT;
  c->timeout = -1;
  c->pd = glr_pd_open(L, fd);
  if (kind == CONN_TCP) glr_pd_tcp(c->pd);
  glr_setclass(L, mtkey);
  return c;
}

void net_conn_push(lua_State *L, int fd, int kind) {
  new_conn(L, fd, kind, &CONN_KEY);
}


static void buf_free(conn *c) {
  free(c->buf);
  c->buf = NULL;
  c->boff = c->blen = c->bcap = c->scan = 0;
}

static void destroy(lua_State *L, conn *c) {
  if (!c->pd) return;
  glr_pd_free(L, c->pd);
  c->pd = NULL;
  if (c->unixpath) {
    struct stat st;
    if (stat(c->unixpath, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
      unlink(c->unixpath); /* only if it is still our socket file */
    free(c->unixpath);
    c->unixpath = NULL;
  }
  close(c->fd);
  c->fd = -1;
}

static void wake_list(waitlist *w) {
  waiter *n = w->head;
  w->head = w->tail = NULL;
  while (n) {
    waiter *next = n->next;
    n->next = NULL;
    glr_ready(n->g);
    n = next;
  }
}

static void conn_close(lua_State *L, conn *c) {
  if (c->closed) return;
  c->closed = true;
  if (c->kind == CONN_LISTENER) glr_shutdown_hook_del(L, &c->cl);
  glr_pd_unblock(L, c->pd);
  wake_list(&c->rwait);
  wake_list(&c->wwait);
  buf_free(c);
  if (c->nops == 0) destroy(L, c);
}

/* ---------- op locks (Go: fdMutex) ---------- */

static glr_g **owner_of(conn *c, int dir) { return dir == DIR_R ? &c->rowner : &c->wowner; }
static waitlist *waiters_of(conn *c, int dir) { return dir == DIR_R ? &c->rwait : &c->wwait; }

static void release(lua_State *L, conn *c, int dir) {
  waitlist *w = waiters_of(c, dir);
  waiter *next = w->head;
  if (next && !c->closed) {
    w->head = next->next;
    if (!w->head) w->tail = NULL;
    next->next = NULL;
    *owner_of(c, dir) = next->g; /* hand-off: nops unchanged */
    glr_ready(next->g);
    return;
  }
  *owner_of(c, dir) = NULL;
  if (--c->nops == 0 && c->closed) destroy(L, c);
}

/* acquire — true when the running goroutine owns dir; false if closed.
** Parks (never returns) while another goroutine owns it: k retries, with
** status LUA_YIELD, and the queue node pushed here is popped first. */
static bool acquire(lua_State *L, int status, conn *c, int dir, lua_KContext ctx,
                    lua_KFunction k) {
  if (status == LUA_YIELD) lua_pop(L, 1); /* our queue node: already unlinked */
  glr_g *g = glr_self(L);
  glr_g **owner = owner_of(c, dir);
  if (c->closed) {
    if (*owner == g) release(L, c, dir);
    return false;
  }
  if (*owner == g) return true;
  if (*owner == NULL) {
    *owner = g;
    c->nops++;
    return true;
  }
  if (!glr_canblock(L)) glr_cannot_block(L, "net");
  waiter *n = lua_newuserdatauv(L, sizeof *n, 0); /* lives on our stack */
  n->g = g;
  n->next = NULL;
  waitlist *w = waiters_of(c, dir);
  if (w->tail) w->tail->next = n;
  else w->head = n;
  w->tail = n;
  glr_park(L, "IO lock", ctx, k);
  return false; /* not reached */
}

/* ---------- argument helpers ---------- */

static conn *check_any(lua_State *L, int idx) {
  conn *c = glr_testclass(L, idx, &CONN_KEY);
  if (!c) c = glr_testclass(L, idx, &LISTENER_KEY);
  if (!c) c = glr_testclass(L, idx, &UDP_KEY);
  if (!c) luaL_typeerror(L, idx, "connection");
  return c;
}

static conn *check_conn(lua_State *L, int idx) {
  return glr_checkclass(L, idx, &CONN_KEY, CONN_MT);
}

static int64_t op_deadline(conn *c) {
  return c->timeout < 0 ? 0 : glr_deadline(c->timeout);
}

static double check_time(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  if (s != s) luaL_argerror(L, idx, "time is NaN");
  return s;
}

/* ---------- read buffer ---------- */

static void buf_consume(conn *c, size_t n) {
  c->boff += n;
  c->blen -= n;
  c->scan = 0;
  if (c->blen == 0) buf_free(c);
}

static void buf_push(lua_State *L, conn *c, size_t n) {
  lua_pushlstring(L, c->buf + c->boff, n);
  buf_consume(c, n);
}

/* room for at least want more bytes; returns the free space */
static size_t buf_reserve(conn *c, size_t want) {
  if (c->boff > 0 && c->boff + c->blen + want > c->bcap) {
    memmove(c->buf, c->buf + c->boff, c->blen);
    c->boff = 0;
  }
  if (c->blen + want > c->bcap) {
    size_t ncap = c->bcap ? c->bcap : 4096;
    while (ncap < c->blen + want) ncap *= 2;
    char *nb = realloc(c->buf, ncap);
    if (!nb) return 0;
    c->buf = nb;
    c->bcap = ncap;
  }
  return c->bcap - c->boff - c->blen;
}

/* ---------- read ---------- */

static int read_k(lua_State *L, int status, lua_KContext ctx);
static int read_lock_k(lua_State *L, int status, lua_KContext ctx);

static int read_fail(lua_State *L, conn *c, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  if (c->blen) buf_push(L, c, c->blen);
  else lua_pushliteral(L, "");
  release(L, c, DIR_R);
  return 3;
}

static int read_done(lua_State *L, conn *c, int n) {
  release(L, c, DIR_R);
  return n;
}

/* search for the delimiter; >= 0 is its offset in the buffer */
static long find_delim(conn *c, const char *d, size_t dl) {
  size_t from = c->scan >= dl ? c->scan - dl + 1 : 0;
  if (c->blen < dl) return -1;
  const char *base = c->buf + c->boff;
  const char *hit = dl == 1 ? memchr(base + from, d[0], c->blen - from)
                            : memmem(base + from, c->blen - from, d, dl);
  if (hit) return hit - base;
  c->scan = c->blen;
  return -1;
}

/* try_delimited — 1..3 results pushed if the request is complete, else 0.
** The limit counts the record without its delimiter (and, for "l", without
** the \r before the \n). */
static int try_delimited(lua_State *L, conn *c, int kind) {
  size_t dl = 1;
  const char *d = "\n";
  if (kind == RD_UNTIL) d = lua_tolstring(L, 2, &dl);
  long at = find_delim(c, d, dl);
  if (at >= 0) {
    size_t n = (size_t)at, reclen = n;
    if (kind != RD_UNTIL && n > 0 && c->buf[c->boff + n - 1] == '\r') reclen--;
    if (reclen > c->limit) { /* complete, but too long */
      lua_pushnil(L);
      lua_pushliteral(L, "line too long");
      lua_pushlstring(L, c->buf + c->boff, n);
      buf_consume(c, n + dl);
      return read_done(L, c, 3);
    }
    if (kind == RD_LINEK) n += 1;
    else if (kind == RD_LINE) n = reclen;
    lua_pushlstring(L, c->buf + c->boff, n);
    buf_consume(c, (size_t)at + dl);
    return read_done(L, c, 1);
  }
  /* no delimiter yet: a record that fits may still end with a \r and a
  ** delimiter that is partly buffered */
  size_t room = c->limit + dl + (kind == RD_UNTIL ? 0 : 1);
  if (c->blen >= room) return read_fail(L, c, "line too long");
  return 0;
}

static int try_complete(lua_State *L, conn *c, int kind, size_t n) {
  switch (kind) {
    case RD_CHUNK:
      if (!c->blen) return 0;
      buf_push(L, c, c->blen);
      return read_done(L, c, 1);
    case RD_EXACT:
      if (c->blen < n) return 0;
      if (n == 0) lua_pushliteral(L, "");
      else buf_push(L, c, n);
      return read_done(L, c, 1);
    case RD_ALL:
      return 0;
    default:
      return try_delimited(L, c, kind);
  }
}

static int read_eof(lua_State *L, conn *c, int kind) {
  if (kind == RD_ALL || ((kind == RD_LINE || kind == RD_LINEK) && c->blen)) {
    if (c->blen) buf_push(L, c, c->blen);
    else lua_pushliteral(L, "");
    return read_done(L, c, 1);
  }
  if (kind == RD_CHUNK || kind == RD_LINE || kind == RD_LINEK) {
    release(L, c, DIR_R);
    return push_fail(L, "eof");
  }
  return read_fail(L, c, "eof");
}

/* read_direct — chunk read with an empty buffer: straight from scratch */
static ssize_t read_direct(lua_State *L, conn *c) {
  char *b = glr_scratch(L, READ_CHUNK);
  ssize_t r = glr_read(L, c->pd, b, READ_CHUNK);
  if (r > 0) lua_pushlstring(L, b, (size_t)r);
  return r;
}

static int read_loop(lua_State *L, conn *c, lua_KContext ctx) {
  int kind = (int)(ctx & 7);
  size_t n = (size_t)(ctx >> 3);
  for (;;) {
    if (c->closed) return read_fail(L, c, "closed");
    int done = try_complete(L, c, kind, n);
    if (done) return done;
    if (glr_pd_check(c->pd, GLR_READ, c->rop_dl) == GLR_TIMEOUT)
      return read_fail(L, c, "timeout");
    ssize_t r;
    if (kind == RD_CHUNK) {
      r = read_direct(L, c);
      if (r > 0) return read_done(L, c, 1);
    } else {
      /* grow with the data, never by what the caller (or a peer's length
      ** field) asked for: read(2^40) costs nothing until bytes arrive */
      size_t want = kind == RD_EXACT ? n - c->blen : READ_CHUNK;
      size_t step = want < READ_CHUNK ? READ_CHUNK : want > READ_STEP_MAX ? READ_STEP_MAX : want;
      size_t room = buf_reserve(c, step);
      if (room == 0) return read_fail(L, c, "not enough memory");
      r = glr_read(L, c->pd, c->buf + c->boff + c->blen,
                   kind == RD_EXACT && want < room ? want : room);
      if (r > 0) {
        c->blen += (size_t)r;
        continue;
      }
    }
    if (r == 0) return read_eof(L, c, kind);
    if (r != -EAGAIN) return read_fail(L, c, errstr((int)-r));
    int e = glr_waitfd(L, c->pd, GLR_READ, c->rop_dl, ctx, read_k);
    if (e >= 0) return e;
    return read_fail(L, c, errstr(-e));
  }
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  int w = glr_wait_result(L, c->pd, GLR_READ);
  if (c->closed || w == GLR_CLOSED) return read_fail(L, c, "closed");
  if (w == GLR_TIMEOUT) return read_fail(L, c, "timeout");
  return read_loop(L, c, ctx);
}

static int read_lock_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  if (!acquire(L, status, c, DIR_R, ctx, read_lock_k)) return push_fail(L, "closed");
  c->rop_dl = op_deadline(c);
  return read_loop(L, c, ctx);
}

static lua_KContext read_format(lua_State *L) {
  if (lua_isnoneornil(L, 2)) return RD_CHUNK;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && n < ((lua_Integer)1 << 40), 2, "size out of range");
    return RD_EXACT | ((lua_KContext)n << 3);
  }
  const char *f = luaL_checkstring(L, 2);
  if (*f == '*') f++;
  switch (*f) {
    case 'l': return RD_LINE;
    case 'L': return RD_LINEK;
    case 'a': return RD_ALL;
    default: return luaL_argerror(L, 2, "invalid format (want n, \"l\", \"L\" or \"a\")");
  }
}

static int c_read(lua_State *L) {
  check_conn(L, 1);
  lua_KContext ctx = read_format(L);
  lua_settop(L, 2);
  return read_lock_k(L, 0, ctx);
}

static int c_readuntil(lua_State *L) {
  check_conn(L, 1);
  size_t dl;
  luaL_checklstring(L, 2, &dl);
  luaL_argcheck(L, dl > 0, 2, "empty delimiter");
  lua_settop(L, 2);
  return read_lock_k(L, 0, RD_UNTIL);
}

/* ---------- write ---------- */

static int write_k(lua_State *L, int status, lua_KContext done);

static int write_fail(lua_State *L, conn *c, const char *msg, size_t done) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushinteger(L, (lua_Integer)done);
  release(L, c, DIR_W);
  return 3;
}

/* build the iovecs for the bytes after `done`; returns count, sets total */
static int build_iov(lua_State *L, size_t done, struct iovec *iov, size_t *total) {
  int top = lua_gettop(L), cnt = 0;
  size_t skip = done;
  *total = 0;
  for (int i = 2; i <= top; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    *total += len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    if (cnt < MAX_IOV) {
      iov[cnt].iov_base = (void *)(s + skip);
      iov[cnt].iov_len = len - skip;
      cnt++;
    }
    skip = 0;
  }
  return cnt;
}

static int write_loop(lua_State *L, conn *c, size_t done) {
  struct iovec iov[MAX_IOV];
  for (;;) {
    if (c->closed) return write_fail(L, c, "closed", done);
    size_t total;
    int cnt = build_iov(L, done, iov, &total);
    if (done >= total) {
      release(L, c, DIR_W);
      lua_pushinteger(L, (lua_Integer)total);
      return 1;
    }
    if (glr_pd_check(c->pd, GLR_WRITE, c->wop_dl) == GLR_TIMEOUT)
      return write_fail(L, c, "timeout", done);
    ssize_t r = glr_writev(L, c->pd, iov, cnt);
    if (r >= 0) {
      done += (size_t)r;
      continue;
    }
    if (r != -EAGAIN) return write_fail(L, c, errstr((int)-r), done);
    int e = glr_waitfd(L, c->pd, GLR_WRITE, c->wop_dl, (lua_KContext)done, write_k);
    if (e >= 0) return e;
    return write_fail(L, c, errstr(-e), done);
  }
}

static int write_k(lua_State *L, int status, lua_KContext done) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  int w = glr_wait_result(L, c->pd, GLR_WRITE);
  if (c->closed || w == GLR_CLOSED) return write_fail(L, c, "closed", (size_t)done);
  if (w == GLR_TIMEOUT) return write_fail(L, c, "timeout", (size_t)done);
  return write_loop(L, c, (size_t)done);
}

static int write_lock_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  if (!acquire(L, status, c, DIR_W, ctx, write_lock_k)) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushinteger(L, 0);
    return 3;
  }
  c->wop_dl = op_deadline(c);
  return write_loop(L, c, 0);
}

static int c_write(lua_State *L) {
  check_conn(L, 1);
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) luaL_checklstring(L, i, NULL); /* numbers -> strings */
  return write_lock_k(L, 0, 0);
}

/* ---------- close, options, addresses ---------- */

static int c_close(lua_State *L) {
  conn *c = check_any(L, 1);
  conn_close(L, c);
  lua_pushboolean(L, 1);
  return 1;
}

static int c_gc(lua_State *L) {
  conn *c = lua_touserdata(L, 1);
  conn_close(L, c);
  destroy(L, c); /* unreachable: no operation can still be inside */
  return 0;
}

static int c_closewrite(lua_State *L) {
  conn *c = check_conn(L, 1);
  if (c->closed) return push_fail(L, "closed");
  if (shutdown(c->fd, SHUT_WR) < 0) return push_fail(L, errstr(errno));
  lua_pushboolean(L, 1);
  return 1;
}

static int c_setlimit(lua_State *L) {
  conn *c = check_conn(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n > 0, 2, "limit must be positive");
  c->limit = (size_t)n;
  return 0;
}

static int c_settimeout(lua_State *L) {
  conn *c = check_any(L, 1);
  if (lua_isnoneornil(L, 2)) {
    c->timeout = -1;
    return 0;
  }
  double s = check_time(L, 2);
  luaL_argcheck(L, s >= 0, 2, "timeout must not be negative");
  c->timeout = s;
  return 0;
}

static int64_t abs_deadline(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  double t = check_time(L, idx);
  if (t >= 9.2e9) return INT64_MAX;
  if (t <= 0) return 1;
  int64_t d = (int64_t)(t * 1e9);
  return d > 0 ? d : 1;
}

static int set_deadline(lua_State *L, int mode) {
  conn *c = check_any(L, 1);
  int64_t d = abs_deadline(L, 2);
  if (!c->closed) glr_pd_setdeadline(L, c->pd, mode, d);
  return 0;
}
static int c_setdeadline(lua_State *L) { return set_deadline(L, GLR_READ | GLR_WRITE); }
static int c_setreaddeadline(lua_State *L) { return set_deadline(L, GLR_READ); }
static int c_setwritedeadline(lua_State *L) { return set_deadline(L, GLR_WRITE); }

static int push_sockaddr(lua_State *L, int fd, bool peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
               : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return push_fail(L, errstr(errno));
  char buf[160];
  lua_pushstring(L, netaddr_format((struct sockaddr *)&ss, len, buf, sizeof buf));
  return 1;
}

static int c_localaddr(lua_State *L) {
  conn *c = check_any(L, 1);
  if (c->closed) return push_fail(L, "closed");
  return push_sockaddr(L, c->fd, false);
}

static int c_remoteaddr(lua_State *L) {
  conn *c = check_conn(L, 1);
  if (c->closed) return push_fail(L, "closed");
  return push_sockaddr(L, c->fd, true);
}

static int setopt(lua_State *L, conn *c, int level, int opt, int v) {
  if (c->closed) return push_fail(L, "closed");
  if (setsockopt(c->fd, level, opt, &v, sizeof v) < 0) return push_fail(L, errstr(errno));
  lua_pushboolean(L, 1);
  return 1;
}

static int c_setnodelay(lua_State *L) {
  conn *c = check_conn(L, 1);
  return setopt(L, c, IPPROTO_TCP, TCP_NODELAY, lua_toboolean(L, 2));
}

static int c_setkeepalive(lua_State *L) {
  conn *c = check_conn(L, 1);
  if (!lua_toboolean(L, 2)) return setopt(L, c, SOL_SOCKET, SO_KEEPALIVE, 0);
  double s = check_time(L, 2);
  luaL_argcheck(L, s >= 1 && s < 1e6, 2, "keepalive period out of range");
  int r = setopt(L, c, SOL_SOCKET, SO_KEEPALIVE, 1);
  if (lua_isnil(L, -r)) return r;
  lua_pop(L, r);
  setopt(L, c, IPPROTO_TCP, TCP_KEEPINTVL, (int)s);
  lua_pop(L, 1);
  return setopt(L, c, IPPROTO_TCP, TCP_KEEPIDLE, (int)s);
}

static int c_fd(lua_State *L) {
  conn *c = check_any(L, 1);
  lua_pushinteger(L, c->closed ? -1 : c->fd);
  return 1;
}

static int c_tostring(lua_State *L) {
  conn *c = check_any(L, 1);
  const char *what = c->kind == CONN_LISTENER ? "listener" : c->kind == CONN_UDP ? "udp" : "conn";
  if (c->closed) lua_pushfstring(L, "%s (closed)", what);
  else lua_pushfstring(L, "%s (fd %d)", what, c->fd);
  return 1;
}

/* ---------- sockets ---------- */

static int new_socket(int family, int type) {
  return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static const char *check_addr(lua_State *L, int idx, bool passive, netaddr *a, int *status) {
  const char *s = luaL_checkstring(L, idx);
  const char *err = NULL;
  *status = netaddr_parse(s, passive, a, &err);
  if (*status == ADDR_BAD) luaL_error(L, "bad address \"%s\": %s", s, err);
  return s;
}

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
  lua_pushfstring(L, "%s: %s", errstr(e), lua_tostring(L, 1));
  return 2;
}

static int dial_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  conn *c = lua_touserdata(L, 3);
  int w = glr_wait_result(L, c->pd, GLR_WRITE);
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
  if (err == EINPROGRESS || err == EALREADY || err == EINTR) {
    int e = glr_waitfd(L, c->pd, GLR_WRITE, c->wop_dl, 0, dial_k);
    return e >= 0 ? e : dial_fail(L, c, -e);
  }
  if (err) return dial_fail(L, c, err);
  if (self_connected(c->fd)) return dial_fail(L, c, ECONNREFUSED);
  lua_settop(L, 3);
  return 1;
}

static int n_dial(lua_State *L) {
  netaddr a;
  int st;
  const char *s = check_addr(L, 1, false, &a, &st);
  double timeout = lua_isnoneornil(L, 2) ? -1 : check_time(L, 2);
  lua_settop(L, 2);
  (void)s;
  if (st == ADDR_NOHOST) return resolve_then(L, n_dial);
  int fd = new_socket(a.family, SOCK_STREAM);
  if (fd < 0) return push_fail(L, errstr(errno));
  conn *c = new_conn(L, fd, a.family == AF_UNIX ? CONN_UNIX : CONN_TCP, &CONN_KEY);
  c->wop_dl = timeout < 0 ? 0 : glr_deadline(timeout);
  if (glr_pd_check(c->pd, GLR_WRITE, c->wop_dl) == GLR_TIMEOUT) return dial_fail(L, c, ETIMEDOUT);
  int r;
  do r = connect(fd, (struct sockaddr *)&a.ss, a.len);
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS) return dial_fail(L, c, errno);
  if (r == 0 && !self_connected(fd)) return 1;
  int e = glr_waitfd(L, c->pd, GLR_WRITE, c->wop_dl, 0, dial_k);
  return e >= 0 ? e : dial_fail(L, c, -e);
}

/* ---------- listen / accept ---------- */

static void listener_closer(lua_State *L, glr_shutdown_hook *cl) {
  conn *c = (conn *)((char *)cl - offsetof(conn, cl));
  conn_close(L, c);
}

/* prepare_unix — remove a stale socket file (nobody accepts on it) */
static int prepare_unix(netaddr *a) {
  const char *path = ((struct sockaddr_un *)&a->ss)->sun_path;
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
  int fd = new_socket(AF_UNIX, SOCK_STREAM);
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
  lua_pushfstring(L, "%s: %s", errstr(e), addr);
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

static int n_listen(lua_State *L) {
  netaddr a;
  int st;
  const char *s = check_addr(L, 1, true, &a, &st);
  if (st == ADDR_NOHOST) return resolve_then(L, n_listen);
  int backlog = SOMAXCONN;
  bool reuseport = false;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "backlog");
    backlog = (int)luaL_optinteger(L, -1, SOMAXCONN);
    lua_getfield(L, 2, "reuseport");
    reuseport = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  if (a.family == AF_UNIX) {
    int e = prepare_unix(&a);
    if (e < 0) return listen_fail(L, -1, -e, s);
  }
  int fd = new_socket(a.family, SOCK_STREAM);
  if (fd < 0) return listen_fail(L, -1, errno, s);
  int e = bind_listen(fd, &a, backlog, reuseport);
  if (e < 0) return listen_fail(L, fd, -e, s);
  conn *c = new_conn(L, fd, CONN_LISTENER, &LISTENER_KEY);
  c->accepted_kind = a.family == AF_UNIX ? CONN_UNIX : CONN_TCP;
  if (a.family == AF_UNIX) {
    const char *path = ((struct sockaddr_un *)&a.ss)->sun_path;
    struct stat stt;
    if (stat(path, &stt) == 0) {
      c->unixpath = strdup(path);
      c->dev = stt.st_dev;
      c->ino = stt.st_ino;
    }
  }
  c->cl.fn = listener_closer;
  glr_shutdown_hook_add(L, &c->cl);
  return 1;
}

static int accept_k(lua_State *L, int status, lua_KContext ctx);

static int accept_fail(lua_State *L, conn *c, const char *msg) {
  release(L, c, DIR_R);
  return push_fail(L, msg);
}

static void log_exhaustion(int e) {
  static _Atomic int64_t last;
  int64_t now = glr_now();
  if (now - atomic_load(&last) < NS_PER_SEC) return;
  atomic_store(&last, now);
  fprintf(stderr, "goluarun: accept: %s; backing off\n", strerror(e));
}

static int accept_loop(lua_State *L, conn *c) {
  for (;;) {
    if (c->closed) return accept_fail(L, c, "closed");
    if (glr_pd_check(c->pd, GLR_READ, c->rop_dl) == GLR_TIMEOUT)
      return accept_fail(L, c, "timeout");
    int fd = glr_accept(L, c->pd, NULL, NULL);
    if (fd >= 0) {
      c->backoff = 0;
      net_conn_push(L, fd, c->accepted_kind);
      release(L, c, DIR_R);
      return 1;
    }
    int e = -fd;
    if (e == ECONNABORTED || e == EPROTO || e == EPERM) continue;
    int64_t dl = c->rop_dl;
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
      log_exhaustion(e);
      c->backoff = c->backoff ? c->backoff * 2 : BACKOFF_MIN_NS;
      if (c->backoff > BACKOFF_MAX_NS) c->backoff = BACKOFF_MAX_NS;
      int64_t b = glr_now() + c->backoff;
      dl = dl && dl < b ? dl : b;
    } else if (e != EAGAIN) {
      return accept_fail(L, c, errstr(e));
    }
    int r = glr_waitfd(L, c->pd, GLR_READ, dl, 0, accept_k);
    if (r >= 0) return r;
    return accept_fail(L, c, errstr(-r));
  }
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  conn *c = lua_touserdata(L, 1);
  int w = glr_wait_result(L, c->pd, GLR_READ);
  if (c->closed || w == GLR_CLOSED) return accept_fail(L, c, "closed");
  return accept_loop(L, c); /* a timeout is re-checked against rop_dl */
}

static int accept_lock_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  if (!acquire(L, status, c, DIR_R, ctx, accept_lock_k)) return push_fail(L, "closed");
  double t = lua_isnoneornil(L, 2) ? c->timeout : lua_tonumber(L, 2);
  c->rop_dl = t < 0 ? 0 : glr_deadline(t);
  return accept_loop(L, c);
}

static int l_accept(lua_State *L) {
  glr_checkclass(L, 1, &LISTENER_KEY, LISTENER_MT);
  if (!lua_isnoneornil(L, 2)) check_time(L, 2);
  lua_settop(L, 2);
  return accept_lock_k(L, 0, 0);
}

/* ---------- UDP ---------- */

static int udp_recv_k(lua_State *L, int status, lua_KContext ctx);

static int udp_recv_loop(lua_State *L, conn *c, size_t max) {
  for (;;) {
    if (c->closed) return accept_fail(L, c, "closed");
    if (glr_pd_check(c->pd, GLR_READ, c->rop_dl) == GLR_TIMEOUT)
      return accept_fail(L, c, "timeout");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char *b = glr_scratch(L, max ? max : 1);
    int flags = 0;
    ssize_t r = glr_recvfrom(L, c->pd, b, max, (struct sockaddr *)&ss, &sl, &flags);
    if (r >= 0) {
      char abuf[160];
      lua_pushlstring(L, b, (size_t)r);
      lua_pushstring(L, netaddr_format((struct sockaddr *)&ss, sl, abuf, sizeof abuf));
      if (flags & MSG_TRUNC) lua_pushliteral(L, "truncated");
      else lua_pushnil(L);
      release(L, c, DIR_R);
      return 3;
    }
    if (r != -EAGAIN) return accept_fail(L, c, errstr((int)-r));
    int e = glr_waitfd(L, c->pd, GLR_READ, c->rop_dl, (lua_KContext)max, udp_recv_k);
    if (e >= 0) return e;
    return accept_fail(L, c, errstr(-e));
  }
}

static int udp_recv_k(lua_State *L, int status, lua_KContext max) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  int w = glr_wait_result(L, c->pd, GLR_READ);
  if (c->closed || w == GLR_CLOSED) return accept_fail(L, c, "closed");
  if (w == GLR_TIMEOUT) return accept_fail(L, c, "timeout");
  return udp_recv_loop(L, c, (size_t)max);
}

static int udp_recv_lock_k(lua_State *L, int status, lua_KContext max) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  if (!acquire(L, status, c, DIR_R, max, udp_recv_lock_k)) return push_fail(L, "closed");
  c->rop_dl = op_deadline(c);
  return udp_recv_loop(L, c, (size_t)max);
}

static int u_recvfrom(lua_State *L) {
  glr_checkclass(L, 1, &UDP_KEY, UDP_MT);
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, max >= 0 && max <= 65536, 2, "size out of range");
  lua_settop(L, 2);
  return udp_recv_lock_k(L, 0, (lua_KContext)max);
}

static int udp_send_k(lua_State *L, int status, lua_KContext ctx);

static int udp_send_loop(lua_State *L, conn *c) {
  netaddr a;
  int st;
  check_addr(L, 3, false, &a, &st);
  size_t len;
  const char *data = lua_tolstring(L, 2, &len);
  for (;;) {
    if (c->closed) return write_fail(L, c, "closed", 0);
    if (st == ADDR_NOHOST) return write_fail(L, c, "no such host", 0);
    if (glr_pd_check(c->pd, GLR_WRITE, c->wop_dl) == GLR_TIMEOUT)
      return write_fail(L, c, "timeout", 0);
    ssize_t r = glr_sendto(L, c->pd, data, len, (struct sockaddr *)&a.ss, a.len);
    if (r >= 0) {
      release(L, c, DIR_W);
      lua_pushinteger(L, (lua_Integer)r);
      return 1;
    }
    if (r != -EAGAIN) return write_fail(L, c, errstr((int)-r), 0);
    int e = glr_waitfd(L, c->pd, GLR_WRITE, c->wop_dl, 0, udp_send_k);
    if (e >= 0) return e;
    return write_fail(L, c, errstr(-e), 0);
  }
}

static int udp_send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  conn *c = lua_touserdata(L, 1);
  int w = glr_wait_result(L, c->pd, GLR_WRITE);
  if (c->closed || w == GLR_CLOSED) return write_fail(L, c, "closed", 0);
  if (w == GLR_TIMEOUT) return write_fail(L, c, "timeout", 0);
  return udp_send_loop(L, c);
}

static int udp_send_lock_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  conn *c = lua_touserdata(L, 1);
  if (!acquire(L, status, c, DIR_W, ctx, udp_send_lock_k)) return push_fail(L, "closed");
  c->wop_dl = op_deadline(c);
  return udp_send_loop(L, c);
}

static int u_sendto(lua_State *L) {
  glr_checkclass(L, 1, &UDP_KEY, UDP_MT);
  luaL_checkstring(L, 2);
  netaddr a;
  int st;
  check_addr(L, 3, false, &a, &st); /* raise on malformed addresses now */
  lua_settop(L, 3);
  return udp_send_lock_k(L, 0, 0);
}

static int n_udp(lua_State *L) {
  netaddr a;
  int st;
  const char *s = check_addr(L, 1, true, &a, &st);
  if (st == ADDR_NOHOST) return push_fail(L, lua_pushfstring(L, "no such host: %s", s));
  if (a.family == AF_UNIX) return luaL_error(L, "net.udp: unix datagram sockets are not supported");
  int fd = new_socket(a.family, SOCK_DGRAM);
  if (fd < 0) return listen_fail(L, -1, errno, s);
  if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0) return listen_fail(L, fd, errno, s);
  new_conn(L, fd, CONN_UDP, &UDP_KEY);
  return 1;
}

/* ---------- moving conns between VMs (go.spawn) ---------- */

int net_conn_is(lua_State *L, int idx) {
  return glr_testclass(L, idx, &CONN_KEY) != NULL || glr_testclass(L, idx, &LISTENER_KEY) != NULL ||
         glr_testclass(L, idx, &UDP_KEY) != NULL;
}

/* net_conn_detach — moving a conn to another VM: checks (and, when
** `commit`, does) the move: the fd leaves this VM's poller but stays open,
** the buffered bytes are pushed, and this handle reads as closed. Returns
** why it cannot move (nothing pushed), or NULL. */
const char *net_conn_detach(lua_State *L, int idx, bool commit, int *fd, int *kind) {
  conn *c = check_any(L, idx);
  if (c->kind == CONN_LISTENER || c->kind == CONN_UDP)
    return "a listener or UDP socket cannot move to another VM (yet)";
  if (c->closed) return "a closed connection cannot move to another VM";
  if (c->nops > 0) return "a connection in use by another goroutine cannot move";
  *fd = c->fd;
  *kind = c->kind;
  lua_pushlstring(L, c->buf ? c->buf + c->boff : "", c->blen);
  if (!commit) return NULL;
  glr_pd_free(L, c->pd);
  c->pd = NULL;
  c->fd = -1;
  c->closed = true;
  buf_free(c);
  return NULL;
}

void net_conn_push_buffered(lua_State *L, int fd, int kind, const char *data, size_t len) {
  conn *c = new_conn(L, fd, kind, &CONN_KEY);
  if (len && buf_reserve(c, len) >= len) {
    memcpy(c->buf + c->boff, data, len);
    c->blen = len;
  }
}

/* ---------- net.serve: in Lua (lua/goluarun/serve.lua) ---------- */

/* a tail call, so error levels in goluarun.serve point at net.serve's caller */
static const char serve_src[] =
    "return function(...) return require('goluarun.serve').serve(...) end\n";

/* ---------- module ---------- */

static const luaL_Reg conn_methods[] = {
    {"read", c_read},
    {"readuntil", c_readuntil},
    {"write", c_write},
    {"close", c_close},
    {"closewrite", c_closewrite},
    {"setlimit", c_setlimit},
    {"settimeout", c_settimeout},
    {"setdeadline", c_setdeadline},
    {"setreaddeadline", c_setreaddeadline},
    {"setwritedeadline", c_setwritedeadline},
    {"localaddr", c_localaddr},
    {"remoteaddr", c_remoteaddr},
    {"setnodelay", c_setnodelay},
    {"setkeepalive", c_setkeepalive},
    {"fd", c_fd},
    {NULL, NULL}};

static const luaL_Reg listener_methods[] = {
    {"accept", l_accept},     {"close", c_close}, {"addr", c_localaddr},
    {"settimeout", c_settimeout}, {"setdeadline", c_setreaddeadline},
    {"fd", c_fd},             {NULL, NULL}};

static const luaL_Reg udp_methods[] = {
    {"recvfrom", u_recvfrom},     {"sendto", u_sendto},
    {"close", c_close},           {"localaddr", c_localaddr},
    {"addr", c_localaddr},        {"settimeout", c_settimeout},
    {"setdeadline", c_setdeadline}, {"fd", c_fd},
    {NULL, NULL}};

static const luaL_Reg net_funcs[] = {
    {"dial", n_dial}, {"listen", n_listen}, {"udp", n_udp},
    {"lookup", net_lookup}, {NULL, NULL}};

int luaopen_net(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__gc", c_gc}, {"__close", c_close}, {"__tostring", c_tostring}, {NULL, NULL}};
  glr_defclass(L, &CONN_KEY, CONN_MT, conn_methods, meta);
  glr_defclass(L, &LISTENER_KEY, LISTENER_MT, listener_methods, meta);
  glr_defclass(L, &UDP_KEY, UDP_MT, udp_methods, meta);
  lua_pop(L, 3);
  luaL_newlib(L, net_funcs);
  if (luaL_loadbuffer(L, serve_src, sizeof serve_src - 1, "=net.serve") != LUA_OK)
    return lua_error(L);
  lua_call(L, 0, 1);
  lua_setfield(L, -2, "serve");
  return 1;
}
