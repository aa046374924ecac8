/*
** conn.h — the ONE connection object under net's three classes: stream
** conns (tcp / unix / a wrapped fd), listeners and UDP sockets. Each class's
** userdata starts with a `conn` core (embedded first) and adds only what it
** needs (conn_stream: the read buffer; lnet.c's listener; ludp.c's socket).
**
** Invariants (every field owner M only: a conn belongs to one VM):
**  - status is one word (conn_status below), moved only by conn_cas_status.
**  - One operation at a time per direction (Go's fdMutex): the goroutine in
**    side[dir].owner runs it, others queue FIFO in cold->lockq[dir] and are
**    handed ownership. nops counts owners; pd and fd are released only when
**    the conn is closing AND nops is 0, so a woken owner always finishes its
**    wait on a live pollDesc.
**  - Held locks: every side a goroutine owns is on that goroutine's list
**    (G.oplocks, newest first, linked through side[d].held; conn.c hold /
**    unhold), from the moment owner is set (op_begin, cross, a hand-off)
**    to the moment it is cleared or handed on (release). An error that
**    unwinds a step (a push over the memory limit) skips op_done: the
**    goroutine still owns the lock. Its next operation on that conn finds
**    itself owner and ends with release (nops stays balanced); if it ends
**    first, the scheduler calls rt->g_oplocks as it ends, which does what
**    op_done would have done (abandon): handshake gate, idle mark, both
**    sides. A conn collected while on a live goroutine's list leaves it in
**    __gc, so the list names only live conns. An operation run outside any
**    goroutine (owner NULL) is on no list: an error there still leaks its
**    lock until __gc.
**  - Every operation (read, write, accept, UDP receive and send) runs
**    conn_op_run: lock the direction, [complete from what is here,] check
**    closed / deadline, try once, on "want read/write" park on the pollDesc
**    (glr_waitfd), re-check on wake, unlock (Go: fd.Read -> pd.waitRead).
**    Op steps return a direction to wait for, not EAGAIN, so a transport
**    whose read may need writability (TLS) fits the same skeleton.
**  - Bytes move through c->tp (a glr_transport, goluarun.h) with its state
**    c->tpdata: the plain socket, TLS (tls.c), or a C module's. The read
**    buffer is freed whenever it empties.
**  - Handshake gate (c->hs): a transport with a handshake starts
**    CONN_HS_PENDING; the first operation of either direction takes the
**    gate (cold->hs_owner) and drives it; operations of other goroutines
**    park in cold->hsq (reason "TLS handshake") while holding their own direction's
**    lock, so during a handshake no goroutine but the driver waits on the
**    pollDesc, and the driver may wait in either direction. An owner that
**    leaves before the end (timeout, closed) puts the gate back to PENDING
**    and wakes the queue, so the next one carries on; a failure is final.
**  - Cross-direction waits after the handshake (a TLS read that must
**    write): the op takes the other direction's lock too (queueing behind
**    its owner), so at most one goroutine waits per direction of the pd;
**    it is released when the op ends (Go's crypto/tls: Read takes c.out).
**  - Idle (conn_idle_start): a stream conn parked in a pool has no
**    operation, no buffered byte and a finished handshake; its pollDesc is
**    watched (runtime/iowait.h) instead of waited on, so the peer's close,
**    any byte from it, or the idle deadline closes the conn right from the
**    scheduler loop and tells the pool (idle_drop). conn_idle_stop takes it
**    back. While idle, the conn cannot move to another VM.
**  - Cold part (c->cold, conn_cold): the lock and handshake queues, the
**    handshake's driver and a stream conn's shutdown hook and pool state
**    live in a block made at their first use (conn_cold_of) and freed by
**    __gc, so a conn nobody else waits on, without TLS or pool (an idle
**    server connection), carries none of it. It never moves with the conn.
*/
#ifndef GLR_CONN_H
#define GLR_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/common.h"
#include "goluarun.h"

/* conn_kind — what the fd is; TCP, UNIX and STREAM are the stream conns'
** (conn_push), each other kind one class's own (CONN_PROC: go.exec's pidfd,
** lexec.c) */
typedef enum conn_kind {
  CONN_TCP = 1, CONN_UNIX, CONN_STREAM, CONN_UDP, CONN_LISTENER, CONN_PROC
} conn_kind;

typedef enum conn_status {
  /* CONN_OPEN: fd and pd live; operations may start. */
  CONN_OPEN = 0,
  /* CONN_CLOSING: close() was called while operations were inside: pd is
  ** unblocked (waiters woke with "closed"), fd and pd stay until the last
  ** owner leaves (conn_op release), which moves it to CONN_CLOSED. */
  CONN_CLOSING,
  /* CONN_CLOSED: pd freed, fd closed or moved to another VM (fd == -1).
  ** Final. */
  CONN_CLOSED,
} conn_status;

enum { CONN_DIR_R = 0, CONN_DIR_W = 1 };

/* Results of op steps and transports below 0 other than -errno. */
enum {
  CONN_WANT_READ = GLR_WANT_READ,   /* park until readable, retry */
  CONN_WANT_WRITE = GLR_WANT_WRITE, /* park until writable, retry */
  CONN_FAILED = GLR_FAILED,         /* the transport's error: tp->errmsg */
  CONN_AGAIN = -0x10010,            /* progress: go round again */
  CONN_PENDING = -0x10011,          /* ready step: not complete yet */
  CONN_GATE = -0x10012,             /* another goroutine drives the handshake */
};

typedef struct conn conn;
typedef glr_transport conn_transport;

/* conn_class — what close does beyond the core, per class. */
typedef struct conn_class {
  const char *name;                       /* "conn", "listener", "udp" */
  void (*closing)(lua_State *L, conn *c); /* at close(); may be NULL */
  void (*destroyed)(conn *c);             /* after fd closed; may be NULL */
} conn_class;

typedef struct conn_waiter conn_waiter;

/* one direction's operation lock and the running operation's state */
typedef struct conn_side {
  glr_g *owner;                    /* holds the lock, or NULL */
  int64_t deadline;                /* the operation's deadline, 0 none,
                                   ** CONN_DL_LAZY: now + timeout, taken at
                                   ** its first wait (op_wait) */
  int64_t wait_dl;                 /* this wait's: deadline, or earlier */
  lua_KContext arg;                /* the operation's progress */
  void *held;                      /* owner M only: in the owner's held
                                   ** list ("Held locks" above), the next
                                   ** older lock it holds */
} conn_side;

/* conn_side.deadline of an operation under a positive timeout that has
** not waited yet: an operation that completes without waiting reads no
** clock (Go computes a deadline only for a wait as well) */
#define CONN_DL_LAZY INT64_MIN

/* a FIFO of waiting goroutines (conn_waiter nodes on their own stacks) */
typedef struct conn_queue {
  conn_waiter *head, *tail;
} conn_queue;

typedef enum conn_hs_status {
  /* CONN_HS_DONE: no handshake to do (plain), or it completed. Final. */
  CONN_HS_DONE = 0,
  /* CONN_HS_PENDING: to do; the next operation takes the gate. */
  CONN_HS_PENDING,
  /* CONN_HS_RUNNING: hs.owner drives it; other operations queue. */
  CONN_HS_RUNNING,
  /* CONN_HS_FAILED: every operation fails with tp->errmsg. Final. */
  CONN_HS_FAILED,
} conn_hs_status;

typedef struct conn_stream conn_stream;
/* conn_idle_drop — an idle conn was closed (peer, deadline, or close()) */
typedef void (*conn_idle_drop)(conn_stream *cs, void *arg);

/* conn_cold — what few conns use (see "Cold part" above; owner M only) */
typedef struct conn_cold {
  conn_queue lockq[2];    /* side[d]'s lock FIFO */
  glr_g *hs_owner;        /* the handshake's driver while RUNNING */
  conn_queue hsq;         /* operations waiting for the handshake's end */
  /* stream conns only */
  conn_stream *cs;        /* the conn, for idle_fire */
  glr_shutdown_hook idle; /* linked while a read marked by conn:setidle(true)
                          ** waits: the graceful shutdown closes the conn */
  bool idle_on;           /* idle is linked in the P's closers */
  conn_idle_drop idle_drop;        /* set while idle in a pool, else NULL */
  void *idle_arg;                  /* idle_drop's argument */
  lua_Integer reused;              /* times taken idle from a pool */
} conn_cold;

struct conn {
  int fd;                          /* -1 once CONN_CLOSED */
  int nops;                        /* owners of side[] */
  /* (the three below hold enum values in a byte each: with borrowed,
  ** waitmode and idle_want they fill the word after fd and nops, so a
  ** stream conn fits the allocator's block it had before the sides' held
  ** links) */
  unsigned char status;            /* a conn_status */
  unsigned char kind;              /* a conn_kind */
  unsigned char hs;                /* a conn_hs_status, the handshake gate;
                                      moved only by conn_cas_hs */
  unsigned char borrowed;          /* side[] index+1 lent to the other
                                      direction's op (cross wait), or 0 */
  unsigned char waitmode[2];       /* side[d]'s wait: GLR_READ/GLR_WRITE parked on */
  bool idle_want;                  /* conn:setidle(true) until the next read
                                      ends: that read's wait links cold->idle */
  glr_pd *pd;                      /* NULL once CONN_CLOSED */
  const conn_transport *tp;
  void *tpdata;                    /* tp's state (NULL for plain) */
  const conn_class *cls;
  uintptr_t tag;                   /* const after conn_new: conn_is's mark */
  conn_cold *cold;                 /* NULL until conn_cold_of needs it */
  double timeout;                  /* per-operation timeout, < 0 none */
  conn_side side[2];
};

/* conn_rbuf — a stream conn's read buffer, data[off .. off+len): made when
** bytes arrive, freed whenever it empties (an idle conn has none). A read
** on an empty buffer reads into the P's scratch laid out as a conn_rbuf
** (`scratch` set) and completes from there; the bytes it leaves move to a
** block of the conn's own before anything else runs (a string push may
** run a finalizer whose read reuses the scratch): the scratch view never
** outlives that read's try step. */
typedef struct conn_rbuf {
  size_t off, len, cap; /* cap: bytes of data */
  size_t scan;          /* delimiter search: bytes already searched */
  bool scratch;         /* the P's scratch: never freed, never grown */
  char data[];
} conn_rbuf;

/* a stream conn: the core plus the read buffer */
struct conn_stream {
  conn c;
  conn_rbuf *rb;        /* NULL while nothing is buffered (or reserved) */
  size_t limit;
};

/* conn_buffered — bytes read from the transport and not yet delivered */
static inline size_t conn_buffered(const conn_stream *cs) { return cs->rb ? cs->rb->len : 0; }

/* conn_op — one operation kind. ctx of every step is the conn's side. */
typedef struct conn_op {
  int dir;  /* CONN_DIR_R / CONN_DIR_W: which lock */
  int mode; /* GLR_READ / GLR_WRITE: the deadline checked before trying */
  /* ready — complete from what is already here (no system call, before the
  ** deadline check): results pushed, or CONN_PENDING. May be NULL. */
  int (*ready)(lua_State *L, conn *c, conn_side *s);
  /* try — one attempt: results pushed (>= 0), CONN_AGAIN, CONN_WANT_*, or
  ** -errno (then fail runs with errstr_of). */
  int (*try)(lua_State *L, conn *c, conn_side *s);
  /* fail — push the failure results for msg; `started` is false when the
  ** operation never got its lock (the conn was closed). */
  int (*fail)(lua_State *L, conn *c, conn_side *s, const char *msg, bool started);
  /* deadline — the op's deadline once locked; NULL: from c->timeout */
  int64_t (*deadline)(lua_State *L, conn *c);
} conn_op;

/* conn_hs_op — the handshake as an operation: conn:handshake([timeout])
** with [conn, timeout]; net.dial with [conn, nil, absolute deadline] (the
** conn is the result, a failure closes it). */
GLR_INTERNAL extern const conn_op conn_hs_op;
/* conn_op_run — run op on the conn at stack index 1 with progress arg. */
GLR_INTERNAL int conn_op_run(lua_State *L, const conn_op *op, lua_KContext arg);

/* conn_new — push a userdata of size bytes (a struct starting with conn)
** for fd, of class key (defined with conn_defclass). */
GLR_INTERNAL conn *conn_new(lua_State *L, size_t size, int fd, conn_kind kind,
                            const void *key);
/* conn_push — push a stream conn owning fd (Go: newFD). */
GLR_INTERNAL conn_stream *conn_push(lua_State *L, int fd, conn_kind kind);
/* conn_defclass — define a conn class: methods, the shared metamethods,
** its conn_class, and (if not NULL) its vcopy hook; pops the metatable. */
struct vcopy_class;
GLR_INTERNAL void conn_defclass(lua_State *L, const void *key, const char *tname,
                                const luaL_Reg *methods, const conn_class *cls,
                                const struct vcopy_class *hook);
/* conn_is — the conn (any class) at idx, else NULL. conn_new stamps each
** conn with a tag, its own address mixed with a constant, which no other
** value's bytes hold by chance (and a copy's bytes do not: a copy has
** another address); the size check keeps the read inside the userdata.
** One compare instead of the metatable's lookup: about 130 instructions
** less per method call (two conn:write, a read and a setdeadline per
** proxied request, and the pool's two steps). */
GLR_INTERNAL conn *conn_is(lua_State *L, int idx);
/* conn_setdeadline_at — conn:setdeadline's step: the deadline at idx (go.now
** seconds; nil: none) for the directions in mode (GLR_READ | GLR_WRITE) */
GLR_INTERNAL void conn_setdeadline_at(lua_State *L, conn *c, int idx, int mode);
/* conn_check — the conn of any class at idx, else a type error. */
GLR_INTERNAL conn *conn_check(lua_State *L, int idx);
GLR_INTERNAL void conn_close(lua_State *L, conn *c);
/* conn_cas_status — move c from `from` to `to`; aborts if illegal. */
GLR_INTERNAL void conn_cas_status(conn *c, conn_status from, conn_status to);
/* conn_cas_hs — move c's handshake gate; aborts if illegal. */
GLR_INTERNAL void conn_cas_hs(conn *c, conn_hs_status from, conn_hs_status to);
/* conn_settransport — glr_conn_settransport on a checked conn */
GLR_INTERNAL int conn_settransport(conn *c, const conn_transport *tp, void *data);
/* conn_stream_is — the stream conn at idx, else NULL (conn_is's tag) */
GLR_INTERNAL conn_stream *conn_stream_is(lua_State *L, int idx);
/* conn_stream_check — the stream conn at idx, else a type error */
GLR_INTERNAL conn_stream *conn_stream_check(lua_State *L, int idx);
/* conn_stream_method — add method f as name to the stream conn class */
GLR_INTERNAL void conn_stream_method(lua_State *L, const char *name, lua_CFunction f);
GLR_INTERNAL int conn_push_fail(lua_State *L, const char *msg);
GLR_INTERNAL int64_t conn_op_deadline(conn *c);
/* the methods every class shares (close, settimeout, deadlines, addresses) */
GLR_INTERNAL int conn_m_close(lua_State *L);
GLR_INTERNAL int conn_m_settimeout(lua_State *L);
GLR_INTERNAL int conn_m_setdeadline(lua_State *L);
GLR_INTERNAL int conn_m_setreaddeadline(lua_State *L);
GLR_INTERNAL int conn_m_localaddr(lua_State *L);
GLR_INTERNAL int conn_m_fd(lua_State *L);
/* the vcopy hook of classes that cannot move (listeners, UDP sockets) */
GLR_INTERNAL extern const struct vcopy_class conn_vcopy_stays;
/* conn_idle_start — park an open stream conn idle until `deadline` (0:
** none): NULL, or why it cannot be ("closed", "eof", "unread bytes",
** "in use", ...; the caller closes it). */
GLR_INTERNAL const char *conn_idle_start(lua_State *L, conn_stream *cs, int64_t deadline,
                                         conn_idle_drop drop, void *arg);
/* conn_idle_is — cs is idle in a pool with this drop and argument */
GLR_INTERNAL bool conn_idle_is(conn_stream *cs, conn_idle_drop drop, void *arg);
/* conn_idle_stop — take an idle conn back (reused + 1): true, or false if
** it was dropped meanwhile (then it is closed). */
GLR_INTERNAL bool conn_idle_stop(lua_State *L, conn_stream *cs);
/* conn_fill — one read of the transport into cs's buffer (cs->rb, grown
** as bytes arrive), for a conn_op defined outside conn.c whose ready step
** looks at the buffer (lhttpread.c: the response head): bytes read (> 0), 0 at
** EOF, CONN_WANT_*, CONN_FAILED or -errno. The caller holds the read lock
** (it is the op's try step). */
GLR_INTERNAL ssize_t conn_fill(lua_State *L, conn_stream *cs);
/* conn_data — the buffered bytes (NULL, *n = 0: none) */
static inline const char *conn_data(const conn_stream *cs, size_t *n) {
  *n = conn_buffered(cs);
  return cs->rb ? cs->rb->data + cs->rb->off : NULL;
}
/* conn_consume — drop the first n buffered bytes (n <= conn_buffered) */
GLR_INTERNAL void conn_consume(conn_stream *cs, size_t n);
/* conn_open_rt — set rt->g_oplocks (the go module's luaopen calls it) */
GLR_INTERNAL void conn_open_rt(lua_State *L);
/* conn_open — defines the stream conn class (net's luaopen calls it). */
GLR_INTERNAL void conn_open(lua_State *L);

#endif
