/* conn.c — see conn.h: the conn core, the operation skeleton, and the
** stream conn class (read buffer, read / write, moving between VMs). */
#include "conn.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/sched.h"
#include "args.h"
#include "classes.h"
#include "errstr.h"
#include "netaddr.h"
#include "vcopy.h"
#include "../runtime/iowait.h"
#include "../runtime/sockio.h"

#define CONN_MT "goluarun.conn"
static const char CONN_KEY = 'c';  /* the stream conn class */
static const char CLASS_KEY = 'k'; /* metatable field: its conn_class */
#define DEFAULT_LIMIT (64 * 1024)
#define READ_CHUNK (64 * 1024)
#define READ_STEP_MAX (1024 * 1024) /* buffer growth per read at most */
#define MAX_IOV 64

/* a goroutine queued for an operation lock; the node is a userdata on the
** waiting goroutine's own stack, so it lives exactly as long as the wait */
struct conn_waiter {
  wcancel cancel;   /* a go.group cancel unlinks it (waiter_detach) */
  glr_g *g;
  conn_waiter *next;
  conn_waiter **head, **tail; /* the FIFO it waits in */
  lua_KContext arg; /* the queued operation's progress argument */
  bool cancelled;   /* unlinked by the cancel: its k raises */
};

/* waiter_detach — a go.group cancel: leave the FIFO (if still in it) */
static bool waiter_detach(wcancel *wc) {
  conn_waiter *n = (conn_waiter *)wc, *prev = NULL;
  for (conn_waiter *x = *n->head; x; prev = x, x = x->next) {
    if (x != n) continue;
    if (prev) prev->next = n->next;
    else *n->head = n->next;
    if (*n->tail == n) *n->tail = prev;
    n->next = NULL;
    n->cancelled = true;
    return true;
  }
  return false;
}

/* ---------- the cold part ---------- */

static conn_cold *conn_cold_of(conn *c) {
  if (GLR_LIKELY(c->cold != NULL)) return c->cold;
  c->cold = x_calloc(1, sizeof *c->cold);
  c->cold->cs = (conn_stream *)c;
  return c->cold;
}

/* the pool state of a stream conn, NULL/false without a cold part */
static conn_idle_drop idle_drop_of(conn_stream *cs) {
  return cs->c.cold ? cs->c.cold->idle_drop : NULL;
}

static bool idle_on(conn_stream *cs) { return cs->c.cold && cs->c.cold->idle_on; }

/* ---------- status ---------- */

void conn_cas_status(conn *c, conn_status from, conn_status to) {
  bool legal = (from == CONN_OPEN && (to == CONN_CLOSING || to == CONN_CLOSED)) ||
               (from == CONN_CLOSING && to == CONN_CLOSED);
  if (!legal || c->status != from) rt_throw("conn: illegal status transition");
  c->status = to;
}

void conn_cas_hs(conn *c, conn_hs_status from, conn_hs_status to) {
  bool legal = (from == CONN_HS_DONE && to == CONN_HS_PENDING) || /* settransport */
               (from == CONN_HS_PENDING && to == CONN_HS_RUNNING) ||
               (from == CONN_HS_RUNNING && to != CONN_HS_RUNNING);
  if (!legal || c->hs != from) rt_throw("conn: illegal handshake transition");
  c->hs = to;
}

/* ---------- the plain socket transport ---------- */

static ssize_t plain_read(lua_State *L, void *data, glr_pd *pd, void *buf, size_t n) {
  (void)data;
  ssize_t r = glr_read(L, pd, buf, n);
  return r == -EAGAIN ? CONN_WANT_READ : r;
}

static ssize_t plain_writev(lua_State *L, void *data, glr_pd *pd, struct iovec *iov, int cnt) {
  (void)data;
  ssize_t r = glr_writev(L, pd, iov, cnt);
  return r == -EAGAIN ? CONN_WANT_WRITE : r;
}

static void plain_moved(lua_State *L, void *data, glr_pd *pd) { (void)L, (void)data, (void)pd; }

static const conn_transport plain = {plain_read, plain_writev, NULL, NULL, NULL, plain_moved, NULL};

/* ---------- lifetime ---------- */

/* pst — the counters of the P running L (owner M only: no atomics) */
static pstats *pst(lua_State *L) { return &vm_p(L)->st; }

static bool is_stream(const conn *c) {
  return c->kind == CONN_TCP || c->kind == CONN_UNIX || c->kind == CONN_STREAM;
}

int conn_push_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* conn_tag — a conn's mark (conn_is): its address, mixed */
static uintptr_t conn_tag(const conn *c) { return (uintptr_t)c ^ (uintptr_t)0x9e3779b97f4a7c15u; }

conn *conn_new(lua_State *L, size_t size, int fd, conn_kind kind, const void *key) {
  conn *c = lua_newuserdatauv(L, size, 0);
  memset(c, 0, size);
  c->status = CONN_OPEN;
  c->fd = fd;
  c->kind = kind;
  c->timeout = -1;
  c->tp = &plain;
  c->pd = glr_pd_open(L, fd);
  if (kind == CONN_TCP) glr_pd_tcp(c->pd);
  c->tag = conn_tag(c);
  class_set(L, key);
  lua_getmetatable(L, -1);
  lua_rawgetp(L, -1, &CLASS_KEY);
  c->cls = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return c;
}

/* destroy — CLOSING -> CLOSED: pd and fd go (no operation is inside) */
static void destroy(lua_State *L, conn *c) {
  if (c->status == CONN_CLOSED) return;
  if (c->tp->close) c->tp->close(L, c->tpdata, c->pd);
  c->tp = &plain;
  c->tpdata = NULL;
  glr_pd_free(L, c->pd);
  c->pd = NULL;
  if (c->cls->destroyed) c->cls->destroyed(c);
  if (is_stream(c)) pst(L)->conns_closed++;
  close(c->fd);
  c->fd = -1;
  conn_cas_status(c, CONN_CLOSING, CONN_CLOSED);
}

static void wake_list(conn_waiter **head, conn_waiter **tail) {
  conn_waiter *n = *head;
  *head = *tail = NULL;
  while (n) {
    conn_waiter *next = n->next;
    n->next = NULL;
    glr_ready(n->g);
    n = next;
  }
}

static void wake_queue(conn_queue *q) { wake_list(&q->head, &q->tail); }

void conn_close(lua_State *L, conn *c) {
  if (c->status != CONN_OPEN) return;
  conn_cas_status(c, CONN_OPEN, CONN_CLOSING);
  if (c->cls->closing) c->cls->closing(L, c);
  glr_pd_unblock(L, c->pd);
  if (c->cold) {
    wake_queue(&c->cold->lockq[CONN_DIR_R]);
    wake_queue(&c->cold->lockq[CONN_DIR_W]);
    wake_queue(&c->cold->hsq);
  }
  if (c->nops == 0) destroy(L, c);
}

conn *conn_is(lua_State *L, int idx) {
  conn *c = lua_touserdata(L, idx); /* (a light userdata's rawlen is 0) */
  if (c && lua_rawlen(L, idx) >= sizeof *c && c->tag == conn_tag(c)) return c;
  return NULL;
}

conn *conn_check(lua_State *L, int idx) {
  conn *c = conn_is(L, idx);
  if (!c) luaL_typeerror(L, idx, "connection");
  return c;
}

/* ---------- op locks (Go: fdMutex) ---------- */

/* The held list (conn.h "Held locks"): a G's oplocks names the newest lock
** it owns as the conn's address with the direction in bit 0 (a conn is a
** userdata: aligned); that side's `held` names the next older one. */
static void *held_node(conn *c, int dir) { return (void *)((uintptr_t)c | (uintptr_t)dir); }
static conn *held_conn(void *n) { return (conn *)((uintptr_t)n & ~(uintptr_t)1); }
static int held_dir(void *n) { return (int)((uintptr_t)n & 1); }

/* hold — g owns side dir now: on top of its list (g NULL: no goroutine) */
static void hold(conn *c, int dir, glr_g *g) {
  c->side[dir].owner = g;
  if (!g) return;
  G *gg = (G *)g;
  c->side[dir].held = gg->oplocks;
  gg->oplocks = held_node(c, dir);
}

/* unhold_deep — unlink n from below the top of g's list (locks taken and
** left in another order than LIFO: an op that raised, then others) */
static void unhold_deep(G *g, void *n, void *next) {
  for (void *x = g->oplocks; x; x = held_conn(x)->side[held_dir(x)].held) {
    conn_side *xs = &held_conn(x)->side[held_dir(x)];
    if (xs->held == n) {
      xs->held = next;
      return;
    }
  }
}

/* unhold — side dir leaves its owner's list (the owner keeps it) */
static void unhold(conn *c, int dir) {
  G *g = (G *)c->side[dir].owner;
  if (!g) return;
  void *n = held_node(c, dir);
  if (GLR_LIKELY(g->oplocks == n)) g->oplocks = c->side[dir].held;
  else unhold_deep(g, n, c->side[dir].held);
}

static void release(lua_State *L, conn *c, int dir) {
  conn_side *s = &c->side[dir];
  conn_queue *q = c->cold ? &c->cold->lockq[dir] : NULL;
  conn_waiter *next = q ? q->head : NULL;
  unhold(c, dir);
  if (next && c->status == CONN_OPEN) {
    q->head = next->next;
    if (!q->head) q->tail = NULL;
    next->next = NULL;
    hold(c, dir, next->g); /* hand-off: nops unchanged */
    glr_ready(next->g);
    return;
  }
  s->owner = NULL;
  if (--c->nops == 0 && c->status == CONN_CLOSING) destroy(L, c);
}

static int lock_k(lua_State *L, int status, lua_KContext ctx);

/* enqueue — park in the FIFO head/tail until a waker unlinks us and
** readies us; then k runs with our node on top of the stack */
static int enqueue(lua_State *L, conn_waiter **head, conn_waiter **tail, lua_KContext arg,
                   const char *reason, const conn_op *op, lua_KFunction k) {
  if (!glr_canblock(L)) glr_cannot_block(L, "net");
  conn_waiter *n = lua_newuserdatauv(L, sizeof *n, 0); /* lives on our stack */
  n->cancel.detach = waiter_detach;
  n->g = glr_self(L);
  n->next = NULL;
  n->head = head;
  n->tail = tail;
  n->arg = arg;
  n->cancelled = false;
  if (*tail) (*tail)->next = n;
  else *head = n;
  *tail = n;
  sched_park_on(L, WK_CALL, &n->cancel);
  return glr_park(L, reason, (lua_KContext)op, k);
}

/* queue — park in direction dir's FIFO until release hands us the lock */
static int queue(lua_State *L, conn *c, int dir, lua_KContext arg, const conn_op *op) {
  conn_queue *q = &conn_cold_of(c)->lockq[dir];
  return enqueue(L, &q->head, &q->tail, arg, "IO lock", op, lock_k);
}

/* ---------- the operation skeleton ---------- */

static int op_k(lua_State *L, int status, lua_KContext ctx);

/* gate_leave — the driver g leaves before the end: the next one carries on */
static void gate_leave(conn *c, glr_g *g) {
  if (c->hs != CONN_HS_RUNNING || c->cold->hs_owner != g) return;
  conn_cas_hs(c, CONN_HS_RUNNING, CONN_HS_PENDING);
  c->cold->hs_owner = NULL;
  wake_queue(&c->cold->hsq);
}

static void idle_end_read(lua_State *L, conn *c);

static int op_done(lua_State *L, conn *c, const conn_op *op, int nres) {
  gate_leave(c, glr_self(L));
  if (c->idle_want && op->dir == CONN_DIR_R) idle_end_read(L, c);
  if (c->borrowed && c->side[c->borrowed - 1].owner == glr_self(L)) {
    int d = c->borrowed - 1;
    c->borrowed = 0;
    release(L, c, d);
  }
  release(L, c, op->dir);
  return nres;
}

/* abandon — what op_done would have done for g's operation on c, when an
** error unwound past it: g leaves the gate and lets its locks go */
static void abandon(lua_State *L, conn *c, glr_g *g) {
  gate_leave(c, g);
  if (c->idle_want && c->side[CONN_DIR_R].owner == g) idle_end_read(L, c);
  if (c->borrowed && c->side[c->borrowed - 1].owner == g) c->borrowed = 0;
  for (int d = CONN_DIR_R; d <= CONN_DIR_W; d++)
    if (c->side[d].owner == g) release(L, c, d);
}

/* oplocks_drop — rt->g_oplocks: g ends holding locks. Each conn is alive:
** g's stack still holds it, or its __gc took it off g's list. */
static void oplocks_drop(P *p, G *g) {
  while (g->oplocks) abandon(p->L, held_conn(g->oplocks), (glr_g *)g);
}

void conn_open_rt(lua_State *L) { vm_p(L)->rt->g_oplocks = oplocks_drop; }

static int op_fail(lua_State *L, conn *c, const conn_op *op, const char *msg) {
  int n = op->fail(L, c, &c->side[op->dir], msg, true);
  return op_done(L, c, op, n);
}

static int op_loop(lua_State *L, conn *c, const conn_op *op);
static int op_loop_checked(lua_State *L, conn *c, const conn_op *op, bool checked);

/* cancel_op — the goroutine's go.group was cancelled: let the locks go,
** then raise */
static int cancel_op(lua_State *L, conn *c, const conn_op *op) {
  op_done(L, c, op, 0);
  return glr_raise_cancelled(L);
}

/* borrow_k — the other direction's lock was handed to us: try again */
static int borrow_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  const conn_op *op = (const conn_op *)ctx;
  conn_waiter *n = lua_touserdata(L, -1);
  int wdir = (int)n->arg;
  bool cancelled = n->cancelled;
  lua_pop(L, 1); /* our queue node: already unlinked */
  conn *c = lua_touserdata(L, 1);
  if (cancelled) return cancel_op(L, c, op);
  if (c->side[wdir].owner != glr_self(L)) return op_fail(L, c, op, ERRSTR_CLOSED);
  c->borrowed = wdir + 1;
  return op_loop(L, c, op);
}

/* cross — a wait in the other direction than op's, after the handshake:
** take that direction's lock first. 0: we hold it; else the park. */
static int cross(lua_State *L, conn *c, const conn_op *op, int wdir) {
  conn_side *o = &c->side[wdir];
  glr_g *g = glr_self(L);
  if (o->owner == g) return 0;
  if (o->owner == NULL) {
    hold(c, wdir, g);
    c->nops++;
    c->borrowed = wdir + 1;
    return 0;
  }
  conn_queue *q = &conn_cold_of(c)->lockq[wdir];
  return enqueue(L, &q->head, &q->tail, wdir, "IO lock", op, borrow_k);
}

static bool idle_link(lua_State *L, conn *c);

/* cannot_wait — the op must wait where nothing can (a __gc finalizer,
** outside any goroutine): let the locks go, then raise, so a later close
** finds no owner and closes the fd */
static int cannot_wait(lua_State *L, conn *c, const conn_op *op) {
  op_done(L, c, op, 0);
  return glr_cannot_block(L, "wait on fd");
}

/* op_wait — park on the direction the try step asked for (Go: pd.wait) */
static int op_wait(lua_State *L, conn *c, const conn_op *op, int want) {
  if (!glr_canblock(L)) return cannot_wait(L, c, op);
  conn_side *s = &c->side[op->dir];
  int wdir = want == CONN_WANT_READ ? CONN_DIR_R : CONN_DIR_W;
  if (wdir != op->dir && c->hs == CONN_HS_DONE && c->side[wdir].owner != glr_self(L)) {
    int r = cross(L, c, op, wdir);
    if (r != 0) return r;
  }
  if (glr_cancelled(L)) return cancel_op(L, c, op);
  if (c->idle_want && want == CONN_WANT_READ && !idle_link(L, c))
    return op_fail(L, c, op, ERRSTR_CLOSED);
  if (s->deadline == CONN_DL_LAZY) { /* the first wait: start the op's clock now */
    s->deadline = glr_deadline(c->timeout);
    if (s->wait_dl == CONN_DL_LAZY) s->wait_dl = s->deadline;
  }
  int mode = want == CONN_WANT_READ ? GLR_READ : GLR_WRITE;
  c->waitmode[op->dir] = mode;
  int e = glr_waitfd(L, c->pd, mode, s->wait_dl, (lua_KContext)op, op_k);
  return e >= 0 ? e : op_fail(L, c, op, errstr_of(-e));
}

/* gate_k — the handshake ended (or its driver left): go round again */
static int gate_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  bool cancelled = ((conn_waiter *)lua_touserdata(L, -1))->cancelled;
  lua_pop(L, 1); /* our queue node: already unlinked */
  if (cancelled) return cancel_op(L, lua_touserdata(L, 1), (const conn_op *)ctx);
  return op_loop(L, lua_touserdata(L, 1), (const conn_op *)ctx);
}

/* hs_try — one step of the handshake through the gate: CONN_AGAIN once
** done, CONN_GATE if another goroutine drives it, a WANT, or a failure */
static int hs_try(lua_State *L, conn *c) {
  if (c->hs == CONN_HS_FAILED) return CONN_FAILED;
  glr_g *g = glr_self(L);
  if (c->hs == CONN_HS_RUNNING && c->cold->hs_owner != g) return CONN_GATE;
  if (c->hs == CONN_HS_PENDING) {
    conn_cas_hs(c, CONN_HS_PENDING, CONN_HS_RUNNING);
    conn_cold_of(c)->hs_owner = g;
  }
  int r = c->tp->handshake(L, c->tpdata, c->pd);
  if (r == CONN_WANT_READ || r == CONN_WANT_WRITE) return r;
  conn_cas_hs(c, CONN_HS_RUNNING, r == 0 ? CONN_HS_DONE : CONN_HS_FAILED);
  if (r == 0) pst(L)->handshakes++;
  else pst(L)->handshake_failures++;
  c->cold->hs_owner = NULL;
  wake_queue(&c->cold->hsq);
  return r == 0 ? CONN_AGAIN : r;
}

static const char *failed_msg(conn *c) {
  const char *m = c->tp->errmsg ? c->tp->errmsg(c->tpdata) : NULL;
  return m ? m : "transport failed";
}

/* op_loop_checked — try, park, re-check: the lock is held. checked: the
** deadlines were just checked (a wake-up's glr_wait_result), the first
** round does not read the clock again */
static int op_loop_checked(lua_State *L, conn *c, const conn_op *op, bool checked) {
  conn_side *s = &c->side[op->dir];
  for (;; checked = false) {
    if (c->status != CONN_OPEN) return op_fail(L, c, op, ERRSTR_CLOSED);
    int r = op->ready ? op->ready(L, c, s) : CONN_PENDING;
    if (r != CONN_PENDING) return op_done(L, c, op, r);
    int64_t dl = s->deadline == CONN_DL_LAZY ? 0 : s->deadline;
    if (!checked && glr_pd_check(c->pd, op->mode, dl) == GLR_TIMEOUT)
      return op_fail(L, c, op, ERRSTR_TIMEOUT);
    s->wait_dl = s->deadline;
    r = c->hs == CONN_HS_DONE ? op->try(L, c, s) : hs_try(L, c);
    if (r >= 0) return op_done(L, c, op, r);
    if (r == CONN_WANT_READ || r == CONN_WANT_WRITE) return op_wait(L, c, op, r);
    if (r == CONN_GATE && !glr_canblock(L)) return cannot_wait(L, c, op);
    if (r == CONN_GATE)
      return enqueue(L, &c->cold->hsq.head, &c->cold->hsq.tail, 0, "TLS handshake", op,
                     gate_k);
    if (r == CONN_FAILED) return op_fail(L, c, op, failed_msg(c));
    if (r != CONN_AGAIN) return op_fail(L, c, op, errstr_of(-r));
  }
}

static int op_loop(lua_State *L, conn *c, const conn_op *op) {
  return op_loop_checked(L, c, op, false);
}

/* last_try — the op's deadline woke it: one more try before "timeout".
** The scheduler runs due timers before it polls, so the deadline may fire
** while an edge waits unread in epoll, and a drained read skips its system
** call until an edge is seen; the wake-up cleared that mark, so this try
** makes the call: bytes or a FIN the kernel holds are never a timeout (as
** LuaSocket's receive, which always calls recv first) */
static int last_try(lua_State *L, conn *c, const conn_op *op) {
  if (c->hs != CONN_HS_DONE) return op_fail(L, c, op, ERRSTR_TIMEOUT);
  int r = op->try(L, c, &c->side[op->dir]);
  if (r >= 0) return op_done(L, c, op, r);
  if (r == CONN_AGAIN) return op_loop(L, c, op); /* completes, or times out */
  if (r == CONN_WANT_READ || r == CONN_WANT_WRITE) return op_fail(L, c, op, ERRSTR_TIMEOUT);
  if (r == CONN_FAILED) return op_fail(L, c, op, failed_msg(c));
  return op_fail(L, c, op, errstr_of(-r));
}

/* op_k — woken: closed ends the operation, its deadline one last try; a
** shortened wait (accept back-off) or a readiness tries again */
static int op_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  const conn_op *op = (const conn_op *)ctx;
  conn *c = lua_touserdata(L, 1);
  conn_side *s = &c->side[op->dir];
  int w = glr_wait_result(L, c->pd, c->waitmode[op->dir]);
  if (w == GLR_CANCELLED) return cancel_op(L, c, op);
  if (c->status != CONN_OPEN || w == GLR_CLOSED) return op_fail(L, c, op, ERRSTR_CLOSED);
  if (w == GLR_TIMEOUT && s->wait_dl == s->deadline) return last_try(L, c, op);
  /* READY: glr_wait_result checked the wait's deadlines, which are the op's
  ** when the wait was in the op's direction and not shortened */
  bool checked = w == GLR_READY && s->wait_dl == s->deadline &&
                 c->waitmode[op->dir] == op->mode;
  return op_loop_checked(L, c, op, checked);
}

int64_t conn_op_deadline(conn *c) {
  return c->timeout < 0 ? 0 : glr_deadline(c->timeout);
}

/* op_begin — take the lock (or queue for it), then run the loop */
static int op_begin(lua_State *L, conn *c, const conn_op *op, lua_KContext arg) {
  conn_side *s = &c->side[op->dir];
  glr_g *g = glr_self(L);
  if (s->owner != g && glr_cancelled(L)) return glr_raise_cancelled(L);
  if (c->status != CONN_OPEN) {
    if (s->owner == g) release(L, c, op->dir);
    return op->fail(L, c, s, ERRSTR_CLOSED, false);
  }
  if (s->owner == NULL) {
    hold(c, op->dir, g);
    c->nops++;
  } else if (s->owner != g) {
    return queue(L, c, op->dir, arg, op);
  }
  s->arg = arg;
  if (op->deadline) s->deadline = op->deadline(L, c);
  else s->deadline = c->timeout > 0 ? CONN_DL_LAZY : conn_op_deadline(c);
  return op_loop(L, c, op);
}

static int lock_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  conn_waiter *n = lua_touserdata(L, -1);
  lua_KContext arg = n->arg;
  if (n->cancelled) return glr_raise_cancelled(L); /* held no lock yet */
  lua_pop(L, 1); /* our queue node: already unlinked */
  return op_begin(L, lua_touserdata(L, 1), (const conn_op *)ctx, arg);
}

int conn_op_run(lua_State *L, const conn_op *op, lua_KContext arg) {
  return op_begin(L, lua_touserdata(L, 1), op, arg);
}

/* ---------- shared methods ---------- */

int conn_m_close(lua_State *L) {
  conn_close(L, conn_check(L, 1));
  lua_pushboolean(L, 1);
  return 1;
}

static int conn_m_gc(lua_State *L) {
  conn *c = lua_touserdata(L, 1);
  for (int d = CONN_DIR_R; d <= CONN_DIR_W; d++) unhold(c, d); /* (a caught error's) */
  conn_close(L, c);
  destroy(L, c); /* unreachable: no operation can still be inside */
  free(c->cold);
  c->cold = NULL;
  return 0;
}

int conn_m_settimeout(lua_State *L) {
  conn *c = conn_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    c->timeout = -1;
    return 0;
  }
  double s = args_seconds(L, 2);
  luaL_argcheck(L, s >= 0, 2, "timeout must not be negative");
  c->timeout = s;
  return 0;
}

static int64_t abs_deadline(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  double t = args_seconds(L, idx);
  if (t >= 9.2e9) return INT64_MAX;
  if (t <= 0) return 1;
  int64_t d = (int64_t)(t * 1e9);
  return d > 0 ? d : 1;
}

void conn_setdeadline_at(lua_State *L, conn *c, int idx, int mode) {
  int64_t d = abs_deadline(L, idx);
  if (c->status == CONN_OPEN) glr_pd_setdeadline(L, c->pd, mode, d);
}

static int set_deadline(lua_State *L, int mode) {
  conn_setdeadline_at(L, conn_check(L, 1), 2, mode);
  return 0;
}
int conn_m_setdeadline(lua_State *L) { return set_deadline(L, GLR_READ | GLR_WRITE); }
int conn_m_setreaddeadline(lua_State *L) { return set_deadline(L, GLR_READ); }
static int m_setwritedeadline(lua_State *L) { return set_deadline(L, GLR_WRITE); }

static int push_sockaddr(lua_State *L, int fd, bool peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
               : getsockname(fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return conn_push_fail(L, errstr_of(errno));
  char buf[160];
  lua_pushstring(L, netaddr_format((struct sockaddr *)&ss, len, buf, sizeof buf));
  return 1;
}

int conn_m_localaddr(lua_State *L) {
  conn *c = conn_check(L, 1);
  if (c->status != CONN_OPEN) return conn_push_fail(L, ERRSTR_CLOSED);
  return push_sockaddr(L, c->fd, false);
}

int conn_m_fd(lua_State *L) {
  conn *c = conn_check(L, 1);
  lua_pushinteger(L, c->status != CONN_OPEN ? -1 : c->fd);
  return 1;
}

static int conn_m_tostring(lua_State *L) {
  conn *c = conn_check(L, 1);
  if (c->status != CONN_OPEN) lua_pushfstring(L, "%s (closed)", c->cls->name);
  else lua_pushfstring(L, "%s (fd %d)", c->cls->name, c->fd);
  return 1;
}

void conn_defclass(lua_State *L, const void *key, const char *tname, const luaL_Reg *methods,
                   const conn_class *cls, const vcopy_class *hook) {
  static const luaL_Reg meta[] = {{"__gc", conn_m_gc},
                                  {"__close", conn_m_close},
                                  {"__tostring", conn_m_tostring},
                                  {NULL, NULL}};
  class_define(L, key, tname, methods, meta);
  lua_pushlightuserdata(L, (void *)cls);
  lua_rawsetp(L, -2, &CLASS_KEY);
  if (hook) vcopy_sethook(L, -1, hook);
  lua_pop(L, 1);
}

/* ---------- stream conns: the read buffer ---------- */

/* check_stream — the methods carry the metatable as upvalue 1
** (class_define): one pointer compare instead of a registry lookup */
static conn_stream *check_stream(lua_State *L, int idx) {
  conn *c = conn_is(L, idx);
  if (c && is_stream(c)) return (conn_stream *)c;
  return class_method(L, idx, &CONN_KEY, CONN_MT); /* (raises) */
}

conn_stream *conn_stream_is(lua_State *L, int idx) {
  conn *c = conn_is(L, idx);
  return c && is_stream(c) ? (conn_stream *)c : NULL;
}

conn_stream *conn_stream_check(lua_State *L, int idx) {
  conn *c = conn_is(L, idx);
  if (c && is_stream(c)) return (conn_stream *)c;
  return class_check(L, idx, &CONN_KEY, CONN_MT); /* (raises) */
}

void conn_stream_method(lua_State *L, const char *name, lua_CFunction f) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CONN_KEY);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

/* a buffer made for a READ_CHUNK read (a read of any size) takes the P's
** spare block (sched_spare_take) and goes back there once it empties: the
** HTTP client's answer head (conn_fill) costs no malloc/free pair */
#define RBUF_SPARE READ_CHUNK
_Static_assert(sizeof(conn_rbuf) + RBUF_SPARE <= SCHED_SPARE, "a spare block holds a READ_CHUNK");

static void buf_free(conn_stream *cs) {
  conn_rbuf *rb = cs->rb;
  cs->rb = NULL;
  if (!rb || rb->scratch) return;
  if (rb->cap == RBUF_SPARE) sched_spare_put(rb);
  else free(rb);
}

/* the first buffered byte; the buffer exists */
static char *buf_start(conn_stream *cs) { return cs->rb->data + cs->rb->off; }
/* where the next byte read goes; the buffer exists */
static char *buf_end(conn_stream *cs) { return buf_start(cs) + cs->rb->len; }

static void buf_consume(conn_stream *cs, size_t n) {
  cs->rb->off += n;
  cs->rb->len -= n;
  cs->rb->scan = 0;
  if (cs->rb->len == 0) buf_free(cs);
}

static size_t buf_reserve(conn_stream *cs, size_t want);

/* buf_settle — the scratch view leaves: the bytes after its first m go to
** a block of the conn's own (none if nothing is left); false if out of
** memory (they are lost) */
static bool buf_settle(conn_stream *cs, size_t m) {
  conn_rbuf *v = cs->rb;
  size_t left = v->len - m;
  cs->rb = NULL;
  if (left == 0) return true;
  if (buf_reserve(cs, left) < left) return false;
  memcpy(cs->rb->data, v->data + v->off + m, left);
  cs->rb->len = left;
  cs->rb->scan = m ? 0 : v->scan;
  return true;
}

/* buf_take — push the first n buffered bytes, drop the first m >= n. From
** the scratch view the rest is settled first: the push may run a finalizer
** whose read reuses the scratch (the pushed bytes are copied before any
** collection step). false: out of memory, nothing pushed */
static bool buf_take(lua_State *L, conn_stream *cs, size_t n, size_t m) {
  const char *p = buf_start(cs);
  if (cs->rb->scratch) {
    if (!buf_settle(cs, m)) return false;
    lua_pushlstring(L, p, n);
    return true;
  }
  lua_pushlstring(L, p, n);
  buf_consume(cs, m);
  return true;
}

/* buf_push — take n bytes: all of them from the scratch view (whose read
** of an exact size asked no more than that size), so it cannot fail */
static void buf_push(lua_State *L, conn_stream *cs, size_t n) { (void)buf_take(L, cs, n, n); }

/* room for at least want more bytes; returns the free space */
static size_t buf_reserve(conn_stream *cs, size_t want) {
  conn_rbuf *rb = cs->rb;
  size_t len = conn_buffered(cs), cap = rb ? rb->cap : 0;
  if (rb && rb->off > 0 && rb->off + len + want > cap) {
    memmove(rb->data, rb->data + rb->off, len);
    rb->off = 0;
  }
  if (len + want > cap) {
    size_t ncap = cap ? cap : 4096;
    while (ncap < len + want) ncap *= 2;
    conn_rbuf *nb = !rb && ncap == RBUF_SPARE ? sched_spare_take() : realloc(rb, sizeof *nb + ncap);
    if (!nb) return 0;
    if (!rb) nb->off = nb->len = nb->scan = 0, nb->scratch = false;
    nb->cap = ncap;
    cs->rb = rb = nb;
  }
  return rb->cap - rb->off - rb->len;
}

/* idle_unlink — the conn leaves the shutdown's idle set */
static void idle_unlink(lua_State *L, conn_stream *cs) {
  if (!idle_on(cs)) return;
  cs->c.cold->idle_on = false;
  glr_shutdown_hook_del(L, &cs->c.cold->idle);
}

/* idle_end — the conn leaves its pool's idle watch (not the shutdown's idle set) */
static void idle_end(lua_State *L, conn_stream *cs) {
  iowait_unwatch(vm_p(L), (pollDesc *)cs->c.pd);
  cs->c.cold->idle_drop = NULL;
  cs->c.cold->idle_arg = NULL;
  cs->c.side[CONN_DIR_R].deadline = 0;
}

static void stream_closing(lua_State *L, conn *c) {
  conn_stream *cs = (conn_stream *)c;
  idle_unlink(L, cs);
  conn_idle_drop drop = idle_drop_of(cs);
  if (drop) { /* closed while idle: tell the pool */
    void *arg = cs->c.cold->idle_arg;
    idle_end(L, cs);
    drop(cs, arg);
  }
  buf_free(cs);
}

/* ---------- idle in a pool ---------- */

/* peek — NULL if nothing waits on the socket, else what does */
static const char *peek(int fd) {
  char b;
  ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r > 0) return "unread bytes";
  if (r == 0) return ERRSTR_EOF;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return NULL;
  return errstr_of(errno);
}

/* idle_fired — the watch of an idle conn (scheduler loop, outside any
** goroutine): a readable event with nothing to read (a spurious or mock
** edge) re-arms it; EOF, a byte, an error or the deadline closes the conn,
** whose closing tells the pool. */
static void idle_fired(pollDesc *pd, void *arg, uint32_t events) {
  conn_stream *cs = arg;
  P *p = pd->owner;
  bool hup = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  if (events && !hup && !peek(cs->c.fd) &&
      iowait_watch(p, pd, cs->c.side[CONN_DIR_R].deadline, idle_fired, cs) == 0)
    return;
  conn_close(p->L, &cs->c);
}

const char *conn_idle_start(lua_State *L, conn_stream *cs, int64_t deadline,
                            conn_idle_drop drop, void *arg) {
  conn *c = &cs->c;
  if (c->status != CONN_OPEN) return ERRSTR_CLOSED;
  if (idle_drop_of(cs)) return "already idle";
  if (c->nops > 0 || (c->cold && (c->cold->lockq[CONN_DIR_R].head || c->cold->lockq[CONN_DIR_W].head)))
    return "in use";
  if (c->hs != CONN_HS_DONE) return "handshake not done";
  if (conn_buffered(cs) > 0) return "unread bytes";
  pollDesc *pd = (pollDesc *)c->pd;
  if (pd->rdhup) return ERRSTR_EOF;
  /* a TCP socket whose last read was short has nothing pending until its
  ** next readiness event (sockio.c's drained reads): no peek needed */
  const char *why = sock_read_would_block(pd) ? NULL : peek(c->fd);
  if (why) return why;
  int e = iowait_watch(vm_p(L), pd, deadline, idle_fired, cs);
  if (e < 0) return errstr_of(-e);
  conn_cold_of(c)->idle_drop = drop;
  c->cold->idle_arg = arg;
  c->side[CONN_DIR_R].deadline = deadline;
  return NULL;
}

bool conn_idle_is(conn_stream *cs, conn_idle_drop drop, void *arg) {
  return idle_drop_of(cs) == drop && cs->c.cold->idle_arg == arg;
}

bool conn_idle_stop(lua_State *L, conn_stream *cs) {
  if (!idle_drop_of(cs)) return false;
  idle_end(L, cs);
  cs->c.cold->reused++;
  return true;
}

static int m_reused(lua_State *L) {
  conn_stream *cs = check_stream(L, 1);
  lua_pushinteger(L, cs->c.cold ? cs->c.cold->reused : 0);
  return 1;
}

static const conn_class stream_class = {"conn", stream_closing, NULL};

conn_stream *conn_push(lua_State *L, int fd, conn_kind kind) {
  conn_stream *cs = (conn_stream *)conn_new(L, sizeof *cs, fd, kind, &CONN_KEY);
  cs->limit = DEFAULT_LIMIT;
  pst(L)->conns_opened++;
  return cs;
}

/* ---------- read ---------- */

enum { RD_CHUNK = 0, RD_EXACT, RD_LINE, RD_LINEK, RD_ALL, RD_UNTIL };
#define RD_KIND(arg) ((int)((arg) & 7))
#define RD_SIZE(arg) ((size_t)((arg) >> 3))

/* nil, msg, and the bytes buffered so far. The scratch view is settled
** first (a rare path): no Lua allocation, which may run a finalizer whose
** read reuses the scratch, may happen while bytes sit only there */
static int read_results(lua_State *L, conn_stream *cs, const char *msg) {
  if (cs->rb && cs->rb->scratch && !buf_settle(cs, 0)) msg = ERRSTR_NOMEM;
  lua_pushnil(L);
  lua_pushstring(L, msg);
  size_t n = conn_buffered(cs);
  if (n) buf_push(L, cs, n);
  else lua_pushliteral(L, "");
  return 3;
}

static int read_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)s;
  if (!started) return conn_push_fail(L, msg);
  return read_results(L, (conn_stream *)c, msg);
}

/* search for the delimiter; >= 0 is its offset in the buffer */
static long find_delim(conn_stream *cs, const char *d, size_t dl) {
  conn_rbuf *rb = cs->rb;
  if (conn_buffered(cs) < dl) return -1;
  size_t from = rb->scan >= dl ? rb->scan - dl + 1 : 0;
  const char *base = buf_start(cs);
  const char *hit = dl == 1 ? memchr(base + from, d[0], rb->len - from)
                            : memmem(base + from, rb->len - from, d, dl);
  if (hit) return hit - base;
  rb->scan = rb->len;
  return -1;
}

/* ready_delimited — the record if complete. The limit counts the record
** without its delimiter (and, for "l", without the \r before the \n). */
static int ready_delimited(lua_State *L, conn_stream *cs, int kind) {
  size_t dl = 1;
  const char *d = "\n";
  if (kind == RD_UNTIL) d = lua_tolstring(L, 2, &dl);
  long at = find_delim(cs, d, dl);
  if (at >= 0) {
    size_t n = (size_t)at, reclen = n;
    if (kind != RD_UNTIL && n > 0 && buf_start(cs)[n - 1] == '\r') reclen--;
    if (reclen > cs->limit) { /* complete, but too long (rare: settled first) */
      if (cs->rb->scratch && !buf_settle(cs, 0)) return read_results(L, cs, ERRSTR_NOMEM);
      lua_pushnil(L);
      lua_pushliteral(L, ERRSTR_TOOLONG);
      if (!buf_take(L, cs, n, n + dl)) return read_results(L, cs, ERRSTR_NOMEM);
      return 3;
    }
    if (kind == RD_LINEK) n += 1;
    else if (kind == RD_LINE) n = reclen;
    if (!buf_take(L, cs, n, (size_t)at + dl)) return read_results(L, cs, ERRSTR_NOMEM);
    return 1;
  }
  /* no delimiter yet: a record that fits may still end with a \r and a
  ** delimiter that is partly buffered */
  size_t room = cs->limit + dl + (kind == RD_UNTIL ? 0 : 1);
  if (conn_buffered(cs) >= room) return read_results(L, cs, ERRSTR_TOOLONG);
  return CONN_PENDING;
}

static int read_ready(lua_State *L, conn *c, conn_side *s) {
  conn_stream *cs = (conn_stream *)c;
  size_t n = RD_SIZE(s->arg);
  switch (RD_KIND(s->arg)) {
    case RD_CHUNK:
      if (!conn_buffered(cs)) return CONN_PENDING;
      buf_push(L, cs, cs->rb->len);
      return 1;
    case RD_EXACT:
      if (conn_buffered(cs) < n) return CONN_PENDING;
      if (n == 0) lua_pushliteral(L, "");
      else buf_push(L, cs, n);
      return 1;
    case RD_ALL:
      return CONN_PENDING;
    default:
      return ready_delimited(L, cs, RD_KIND(s->arg));
  }
}

static int read_eof(lua_State *L, conn_stream *cs, int kind) {
  size_t have = conn_buffered(cs);
  if (kind == RD_ALL || ((kind == RD_LINE || kind == RD_LINEK) && have)) {
    if (have) buf_push(L, cs, have);
    else lua_pushliteral(L, "");
    return 1;
  }
  if (kind == RD_CHUNK || kind == RD_LINE || kind == RD_LINEK)
    return conn_push_fail(L, ERRSTR_EOF);
  return read_results(L, cs, ERRSTR_EOF);
}

/* read_fresh — an empty buffer reads into the P's scratch, laid out as a
** conn_rbuf, and the ready step completes from there: a record that came
** whole costs no buffer of the conn's own; only bytes left over (or an
** incomplete record) are kept, so a conn parked waiting for bytes holds no
** buffer at all. Results pushed, CONN_AGAIN (bytes kept), or <= 0 from the
** transport */
static int read_fresh(lua_State *L, conn_stream *cs, conn_side *s) {
  int kind = RD_KIND(s->arg);
  size_t n = RD_SIZE(s->arg);
  conn_rbuf *v = (conn_rbuf *)glr_scratch(L, sizeof *v + READ_CHUNK);
  ssize_t r = cs->c.tp->read(L, cs->c.tpdata, cs->c.pd, v->data,
                             kind == RD_EXACT && n < READ_CHUNK ? n : READ_CHUNK);
  if (r <= 0) return (int)r;
  pst(L)->bytes_read += (uint64_t)r;
  /* field by field: a struct assignment would also write the padding,
  ** which data[] overlaps */
  v->off = v->scan = 0;
  v->len = (size_t)r;
  v->cap = READ_CHUNK;
  v->scratch = true;
  cs->rb = v;
  int res = read_ready(L, &cs->c, s);
  if (cs->rb != v) return res; /* taken, the rest settled */
  if (!buf_settle(cs, 0)) return read_results(L, cs, ERRSTR_NOMEM);
  return res == CONN_PENDING ? CONN_AGAIN : res;
}

/* read_into — read into the buffer. Grow with the data, never by what the
** caller (or a peer's length field) asked for: read(2^40) costs nothing
** until bytes arrive. */
static ssize_t read_into(lua_State *L, conn_stream *cs, int kind, size_t n) {
  size_t want = kind == RD_EXACT ? n - cs->rb->len : READ_CHUNK;
  size_t step = want < READ_CHUNK ? READ_CHUNK : want > READ_STEP_MAX ? READ_STEP_MAX : want;
  size_t room = buf_reserve(cs, step);
  if (room == 0) return -ENOMEM;
  ssize_t r = cs->c.tp->read(L, cs->c.tpdata, cs->c.pd, buf_end(cs),
                             kind == RD_EXACT && want < room ? want : room);
  if (r > 0) cs->rb->len += (size_t)r;
  return r;
}

static int read_try(lua_State *L, conn *c, conn_side *s) {
  conn_stream *cs = (conn_stream *)c;
  int kind = RD_KIND(s->arg);
  ssize_t r;
  if (kind == RD_CHUNK) { /* empty buffer: straight from scratch */
    char *b = glr_scratch(L, READ_CHUNK);
    r = c->tp->read(L, c->tpdata, c->pd, b, READ_CHUNK);
    if (r > 0) {
      pst(L)->bytes_read += (uint64_t)r;
      lua_pushlstring(L, b, (size_t)r);
      return 1;
    }
  } else if (!conn_buffered(cs)) {
    r = read_fresh(L, cs, s);
    if (r > 0 || r == CONN_AGAIN) return (int)r;
  } else {
    r = read_into(L, cs, kind, RD_SIZE(s->arg));
    if (r > 0) {
      pst(L)->bytes_read += (uint64_t)r;
      return CONN_AGAIN;
    }
    if (r == -ENOMEM) return read_results(L, cs, ERRSTR_NOMEM);
  }
  if (r == 0) return read_eof(L, cs, kind);
  return (int)r;
}

static const conn_op read_op = {CONN_DIR_R, GLR_READ, read_ready, read_try, read_fail, NULL};

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

static int m_read(lua_State *L) {
  check_stream(L, 1);
  lua_KContext arg = read_format(L);
  lua_settop(L, 2);
  return conn_op_run(L, &read_op, arg);
}

static int m_readuntil(lua_State *L) {
  check_stream(L, 1);
  size_t dl;
  luaL_checklstring(L, 2, &dl);
  luaL_argcheck(L, dl > 0, 2, "empty delimiter");
  lua_settop(L, 2);
  return conn_op_run(L, &read_op, RD_UNTIL);
}

/* ---------- write: the strings at 2..top, s->arg bytes of them done ---------- */

static int write_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)c;
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushinteger(L, started ? (lua_Integer)s->arg : 0);
  return 3;
}

static size_t write_total(lua_State *L) {
  size_t total = 0;
  for (int i = lua_gettop(L); i >= 2; i--) total += lua_rawlen(L, i);
  return total;
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

static int write_ready(lua_State *L, conn *c, conn_side *s) {
  (void)c;
  if (s->arg == 0 && lua_gettop(L) >= 2 && lua_rawlen(L, 2) > 0) return CONN_PENDING;
  size_t total = write_total(L);
  if ((size_t)s->arg < total) return CONN_PENDING;
  lua_pushinteger(L, (lua_Integer)total);
  return 1;
}

static int write_try(lua_State *L, conn *c, conn_side *s) {
  struct iovec iov[MAX_IOV];
  size_t total;
  int cnt = build_iov(L, (size_t)s->arg, iov, &total);
  ssize_t r = c->tp->writev(L, c->tpdata, c->pd, iov, cnt);
  if (r < 0) return (int)r;
  pst(L)->bytes_written += (uint64_t)r;
  s->arg += (lua_KContext)r;
  if ((size_t)s->arg < total) return CONN_AGAIN;
  lua_pushinteger(L, (lua_Integer)total);
  return 1;
}

static const conn_op write_op = {CONN_DIR_W, GLR_WRITE, write_ready, write_try, write_fail, NULL};

static int m_write(lua_State *L) {
  check_stream(L, 1);
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) /* numbers -> strings; a string: one type test */
    if (lua_type(L, i) != LUA_TSTRING) luaL_checklstring(L, i, NULL);
  return conn_op_run(L, &write_op, 0);
}

/* ---------- stream options and addresses ---------- */

static int closewrite_try(lua_State *L, conn *c, conn_side *s) {
  (void)s;
  int r = c->tp->closewrite(L, c->tpdata, c->pd);
  if (r != 0) return r;
  if (shutdown(c->fd, SHUT_WR) < 0) return -errno;
  lua_pushboolean(L, 1);
  return 1;
}

static int plain_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)c, (void)s, (void)started;
  return conn_push_fail(L, msg);
}

/* closewrite on a transport that has one (TLS: close_notify) runs as a
** write; on the plain socket it is one shutdown, deadlines or not */
static const conn_op closewrite_op = {CONN_DIR_W, GLR_WRITE, NULL, closewrite_try, plain_fail,
                                      NULL};

static int m_closewrite(lua_State *L) {
  conn *c = &check_stream(L, 1)->c;
  if (c->status != CONN_OPEN) return conn_push_fail(L, ERRSTR_CLOSED);
  if (c->tp->closewrite) {
    lua_settop(L, 1);
    return conn_op_run(L, &closewrite_op, 0);
  }
  if (shutdown(c->fd, SHUT_WR) < 0) return conn_push_fail(L, errstr_of(errno));
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------- the handshake (conn:handshake, and the net.dial of tls.c) ---------- */

/* dial mode (net.dial with tls): index 3 holds the absolute deadline; the
** result is the conn, and a failure closes it */
static bool hs_dialing(lua_State *L) { return lua_isinteger(L, 3); }

static int hs_ready(lua_State *L, conn *c, conn_side *s) {
  (void)s;
  if (c->hs != CONN_HS_DONE) return CONN_PENDING;
  if (hs_dialing(L)) lua_pushvalue(L, 1);
  else lua_pushboolean(L, 1);
  return 1;
}

static int hs_try_op(lua_State *L, conn *c, conn_side *s) { return hs_ready(L, c, s); }

static int hs_fail(lua_State *L, conn *c, conn_side *s, const char *msg, bool started) {
  (void)s, (void)started;
  if (hs_dialing(L)) {
    lua_pushstring(L, msg); /* msg may live in the transport's state */
    conn_close(L, c);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return conn_push_fail(L, msg);
}

static int64_t hs_deadline(lua_State *L, conn *c) {
  if (hs_dialing(L)) return (int64_t)lua_tointeger(L, 3);
  if (lua_isnumber(L, 2)) return glr_deadline(lua_tonumber(L, 2));
  return conn_op_deadline(c);
}

const conn_op conn_hs_op = {CONN_DIR_W, GLR_WRITE, hs_ready, hs_try_op, hs_fail, hs_deadline};

static int m_handshake(lua_State *L) {
  check_stream(L, 1);
  if (!lua_isnoneornil(L, 2)) args_seconds(L, 2);
  lua_settop(L, 2);
  return conn_op_run(L, &conn_hs_op, 0);
}

/* ---------- transports ---------- */

int conn_settransport(conn *c, const conn_transport *tp, void *data) {
  if (c->status != CONN_OPEN) return -EBADF;
  if (c->nops > 0 || c->tp != &plain || conn_buffered((conn_stream *)c) > 0) return -EBUSY;
  c->tp = tp;
  c->tpdata = data;
  if (tp->handshake) conn_cas_hs(c, CONN_HS_DONE, CONN_HS_PENDING);
  return 0;
}

int glr_conn_settransport(lua_State *L, int idx, const glr_transport *tp, void *data) {
  return conn_settransport(&check_stream(L, idx)->c, tp, data);
}

static int m_setlimit(lua_State *L) {
  conn_stream *cs = check_stream(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n > 0, 2, "limit must be positive");
  cs->limit = (size_t)n;
  return 0;
}

static int m_remoteaddr(lua_State *L) {
  conn *c = &check_stream(L, 1)->c;
  if (c->status != CONN_OPEN) return conn_push_fail(L, ERRSTR_CLOSED);
  return push_sockaddr(L, c->fd, true);
}

static int setopt(lua_State *L, conn *c, int level, int opt, int v) {
  if (c->status != CONN_OPEN) return conn_push_fail(L, ERRSTR_CLOSED);
  if (setsockopt(c->fd, level, opt, &v, sizeof v) < 0) return conn_push_fail(L, errstr_of(errno));
  lua_pushboolean(L, 1);
  return 1;
}

static int m_setnodelay(lua_State *L) {
  conn *c = &check_stream(L, 1)->c;
  return setopt(L, c, IPPROTO_TCP, TCP_NODELAY, lua_toboolean(L, 2));
}

static int m_setkeepalive(lua_State *L) {
  conn *c = &check_stream(L, 1)->c;
  if (!lua_toboolean(L, 2)) return setopt(L, c, SOL_SOCKET, SO_KEEPALIVE, 0);
  double s = args_seconds(L, 2);
  luaL_argcheck(L, s >= 1 && s < 1e6, 2, "keepalive period out of range");
  int r = setopt(L, c, SOL_SOCKET, SO_KEEPALIVE, 1);
  if (lua_isnil(L, -r)) return r;
  lua_pop(L, r);
  setopt(L, c, IPPROTO_TCP, TCP_KEEPINTVL, (int)s);
  lua_pop(L, 1);
  return setopt(L, c, IPPROTO_TCP, TCP_KEEPIDLE, (int)s);
}

/* ---------- moving stream conns between VMs (vcopy hook) ---------- */

/* payload: fd, kind, buffered length, buffered bytes. Committing the move:
** the fd leaves this VM's poller but stays open, this handle reads closed */
static const char *stream_vc_encode(lua_State *L, int idx, vbuf *b, bool commit) {
  conn_stream *cs = lua_touserdata(L, idx);
  conn *c = &cs->c;
  if (c->status != CONN_OPEN) return "a closed connection cannot move to another VM";
  if (c->nops > 0) return "a connection in use by another goroutine cannot move";
  if (idle_drop_of(cs)) return "an idle pooled connection cannot move";
  if (!c->tp->moved) return "a connection on this transport cannot move to another VM";
  int kind = (int)c->kind, hs = (int)c->hs;
  size_t len = conn_buffered(cs);
  vbuf_put(L, b, &c->fd, sizeof c->fd);
  vbuf_put(L, b, &kind, sizeof kind);
  vbuf_put(L, b, &hs, sizeof hs);
  vbuf_put(L, b, &c->tp, sizeof c->tp);
  vbuf_put(L, b, &c->tpdata, sizeof c->tpdata);
  vbuf_put(L, b, &len, sizeof len);
  vbuf_put(L, b, len ? buf_start(cs) : "", len);
  if (!commit) return NULL;
  glr_pd_free(L, c->pd);
  c->pd = NULL;
  c->fd = -1;
  c->tp = &plain; /* tpdata moved with the payload */
  c->tpdata = NULL;
  conn_cas_status(c, CONN_OPEN, CONN_CLOSED);
  idle_unlink(L, cs);
  buf_free(cs);
  pst(L)->conns_closed++; /* opened again in the receiving VM */
  return NULL;
}

static void stream_vc_decode(lua_State *L, const char **p) {
  int fd, kind, hs;
  const conn_transport *tp;
  void *data;
  size_t len;
  vbuf_get(p, &fd, sizeof fd);
  vbuf_get(p, &kind, sizeof kind);
  vbuf_get(p, &hs, sizeof hs);
  vbuf_get(p, &tp, sizeof tp);
  vbuf_get(p, &data, sizeof data);
  vbuf_get(p, &len, sizeof len);
  conn_stream *cs = conn_push(L, fd, (conn_kind)kind);
  cs->c.tp = tp;
  cs->c.tpdata = data;
  cs->c.hs = (conn_hs_status)hs; /* DONE, PENDING or FAILED: no driver */
  tp->moved(L, data, cs->c.pd);
  if (len && buf_reserve(cs, len) >= len) {
    memcpy(buf_end(cs), *p, len);
    cs->rb->len = len;
  }
  *p += len;
}

static void stream_vc_walk(const char **p, int delta) {
  (void)delta;
  size_t len;
  *p += 3 * sizeof(int) + sizeof(const conn_transport *) + sizeof(void *);
  vbuf_get(p, &len, sizeof len);
  *p += len;
}

static const vcopy_class stream_vcopy = {true, "connections", stream_vc_encode,
                                         stream_vc_decode, stream_vc_walk, false};

static const char *stays_vc_encode(lua_State *L, int idx, vbuf *b, bool commit) {
  (void)L, (void)idx, (void)b, (void)commit;
  return "a listener or UDP socket cannot move to another VM (yet)";
}

const vcopy_class conn_vcopy_stays = {true, "connections", stays_vc_encode,
                                      stream_vc_decode, stream_vc_walk, false};

/* ---------- the public wrapper and the class ---------- */

int glr_conn_wrap(lua_State *L, int fd, const char *kind) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int e = errno;
    close(fd);
    return conn_push_fail(L, strerror(e));
  }
  conn_kind k = CONN_STREAM;
  if (kind && strcmp(kind, "tcp") == 0) k = CONN_TCP;
  else if (kind && strcmp(kind, "unix") == 0) k = CONN_UNIX;
  conn_push(L, fd, k);
  return 1;
}

/* ---------- idle (graceful shutdown) ---------- */

/* idle_now — marked idle and nothing to read: no byte buffered here or in
** the kernel (a request that arrived is not idle) */
static bool idle_now(conn_stream *cs) {
  if (conn_buffered(cs) > 0) return false;
  char b;
  ssize_t n = recv(cs->c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* idle_fire — the graceful shutdown: a conn marked idle with nothing to
** read is between requests; close it (a parked read returns "closed") */
static void idle_fire(lua_State *L, glr_shutdown_hook *h) {
  conn_cold *cold = (conn_cold *)(void *)((char *)h - offsetof(conn_cold, idle));
  conn_stream *cs = cold->cs;
  cold->idle_on = false; /* the runtime unlinked it */
  if (idle_now(cs)) conn_close(L, &cs->c);
}

/* idle_link — a read marked by setidle(true) is about to wait with nothing
** buffered: link the shutdown's closer for the length of the wait, or, if
** the shutdown already ran, close the conn now (false) */
static bool idle_link(lua_State *L, conn *c) {
  conn_stream *cs = (conn_stream *)c;
  if (idle_on(cs) || conn_buffered(cs) > 0) return true;
  if (glr_shutting_down(L) && idle_now(cs)) {
    conn_close(L, c);
    return false;
  }
  conn_cold *cold = conn_cold_of(c);
  cold->idle.fn = idle_fire;
  glr_shutdown_hook_add(L, &cold->idle);
  cold->idle_on = true;
  return true;
}

/* idle_end_read — the marked read ended (bytes, error or close): the mark
** and the closer's link end with it */
static void idle_end_read(lua_State *L, conn *c) {
  c->idle_want = false;
  idle_unlink(L, (conn_stream *)c);
}

/* idle_mark — setidle(true) on an open conn: the mark, or, once the
** shutdown ran, the close (too late to wait for a request) */
static void idle_mark(lua_State *L, conn_stream *cs) {
  if (glr_shutting_down(L) && idle_now(cs)) conn_close(L, &cs->c);
  else cs->c.idle_want = true;
}

/* conn:setidle(on) — marks the next read as the wait between requests
** (on), or ends the mark (off). Nothing is linked until that read waits:
** a keep-alive server whose requests are already there pays one store. */
static int m_setidle(lua_State *L) {
  conn_stream *cs = check_stream(L, 1);
  bool on = lua_toboolean(L, 2);
  if (cs->c.status != CONN_OPEN) return 0;
  if (on) idle_mark(L, cs);
  else idle_end_read(L, &cs->c);
  return 0;
}

/* conn:_readidle() — conn:setidle(true) then conn:read(), in one call:
** goluarun.http's keep-alive wait (a method call per request fewer) */
static int m_readidle(lua_State *L) {
  conn_stream *cs = check_stream(L, 1);
  if (cs->c.status == CONN_OPEN) idle_mark(L, cs);
  lua_settop(L, 2);
  return conn_op_run(L, &read_op, RD_CHUNK);
}

void conn_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"read", m_read},
      {"readuntil", m_readuntil},
      {"write", m_write},
      {"close", conn_m_close},
      {"closewrite", m_closewrite},
      {"handshake", m_handshake},
      {"setlimit", m_setlimit},
      {"settimeout", conn_m_settimeout},
      {"setdeadline", conn_m_setdeadline},
      {"setreaddeadline", conn_m_setreaddeadline},
      {"setwritedeadline", m_setwritedeadline},
      {"localaddr", conn_m_localaddr},
      {"remoteaddr", m_remoteaddr},
      {"setnodelay", m_setnodelay},
      {"setkeepalive", m_setkeepalive},
      {"setidle", m_setidle},
      {"_readidle", m_readidle},
      {"fd", conn_m_fd},
      {"reused", m_reused},
      {NULL, NULL}};
  conn_defclass(L, &CONN_KEY, CONN_MT, methods, &stream_class, &stream_vcopy);
}

/* ---------- fill: reads for an op defined outside (lhttpread.c) ---------- */

ssize_t conn_fill(lua_State *L, conn_stream *cs) {
  ssize_t r = read_into(L, cs, RD_ALL, 0);
  if (r > 0) pst(L)->bytes_read += (uint64_t)r;
  return r;
}

void conn_consume(conn_stream *cs, size_t n) {
  if (n > 0) buf_consume(cs, n);
}
