/*
** goluarun.h — the public C API of goluarun (version below).
**
** For C modules loaded into goluarun with `require`. Every function whose
** first argument is a lua_State must be called from a goroutine of that VM
** (i.e. from a lua_CFunction the runtime called), on the thread running it;
** none of them may be called from another thread unless stated. Nothing here
** blocks the thread: waiting is done by parking the calling goroutine in
** continuation style (lua_KFunction), exactly like lua_yieldk.
**
** Errors: functions returning int give 0 / a positive result, or -errno.
** Misuse (e.g. parking where Lua cannot yield) raises a Lua error.
** Time: absolute monotonic nanoseconds (glr_now()); 0 = no deadline.
**
** Ownership: a glr_pd belongs to the module that opened it; the module
** closes the fd itself, after glr_pd_free. The runtime never closes a
** module's fd, except through a connection made by glr_conn_wrap, which owns
** its fd from then on.
*/
#ifndef GOLUARUN_H
#define GOLUARUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <lua.h>

#define GLR_VERSION_MAJOR 0
#define GLR_VERSION_MINOR 1
#define GLR_VERSION_PATCH 0
#define GLR_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

#define GLR_API extern __attribute__((visibility("default")))

/* A poll descriptor: the runtime's wait state for one fd. */
typedef struct glr_pd glr_pd;

enum glr_mode { GLR_READ = 1, GLR_WRITE = 2 };
/* what ended a wait */
enum glr_wake { GLR_READY = 1, GLR_TIMEOUT = 2, GLR_CLOSED = 3, GLR_CANCELLED = 4 };

/* glr_now — monotonic clock, ns. Any thread. */
GLR_API int64_t glr_now(void);
/* glr_deadline — now + seconds as an absolute deadline; huge values clamp
** to "never", values <= 0 give a deadline already passed. Any thread. */
GLR_API int64_t glr_deadline(double seconds);

/* glr_pd_open — a poll descriptor for fd, which must be non-blocking.
** Registration with the P's epoll happens at the first wait. Never NULL:
** pollDescs come from a cache that is never returned to malloc, and a
** failure to grow it aborts the process ("out of memory"), as Go's runtime
** does for its own structures. */
GLR_API glr_pd *glr_pd_open(lua_State *L, int fd);
/* glr_pd_unblock — marks pd closing and wakes every goroutine waiting on
** it with GLR_CLOSED; deregisters the fd. Call before closing the fd. */
GLR_API void glr_pd_unblock(lua_State *L, glr_pd *pd);
/* glr_pd_free — returns pd to the runtime. No goroutine may still be
** between glr_waitfd and its glr_wait_result on pd (count your operations,
** as the net module does). Unblocks first if needed. */
GLR_API void glr_pd_free(lua_State *L, glr_pd *pd);
GLR_API int glr_pd_fd(const glr_pd *pd);
/* glr_pd_tcp — declares pd's fd a connected TCP socket. glr_read may then
** skip a read that would only return EAGAIN (after a short read, until the
** next readiness event), saving a system call per request. */
GLR_API void glr_pd_tcp(glr_pd *pd);
/* glr_pd_setdeadline — persistent deadline for GLR_READ, GLR_WRITE or both
** (ORed); applies to a goroutine already waiting (re-armed, or woken with
** GLR_TIMEOUT if it has passed). 0 clears. */
GLR_API void glr_pd_setdeadline(lua_State *L, glr_pd *pd, int mode, int64_t deadline);
/* glr_pd_check — before an operation: GLR_CLOSED, GLR_TIMEOUT if the
** earlier of the persistent deadline and `deadline` has passed, else 0. */
GLR_API int glr_pd_check(glr_pd *pd, int mode, int64_t deadline);

/* glr_canblock — whether the running goroutine can park from L here: false
** only inside __gc finalizers and outside any goroutine. Where Lua cannot
** yield (table.sort comparators, C-called metamethods) glr_park and
** glr_sleep park the goroutine on its thread (the VM's other goroutines
** run meanwhile) and call k before returning. */
GLR_API int glr_canblock(lua_State *L);
/* glr_waitfd — parks the running goroutine until pd's fd is ready for
** `mode`, pd is unblocked, or the deadline (the earlier of `deadline` and the
** persistent one) passes; then calls k(L, status, ctx) on the same stack.
** Use as `return glr_waitfd(L, pd, GLR_READ, dl, ctx, k);`. If a readiness
** was already pending, k is called at once without parking. Raises a Lua
** error where the goroutine cannot park; returns -errno (without calling k)
** if the fd cannot be polled (e.g. a regular file). */
GLR_API int glr_waitfd(lua_State *L, glr_pd *pd, int mode, int64_t deadline,
                       lua_KContext ctx, lua_KFunction k);
/* glr_wait_result — inside k: GLR_READY, GLR_TIMEOUT, GLR_CLOSED or
** GLR_CANCELLED (the goroutine's go.group was cancelled: release what the
** operation holds, then glr_raise_cancelled). Call exactly once per wait.
** GLR_READY may be spurious: retry the operation. */
GLR_API int glr_wait_result(lua_State *L, glr_pd *pd, int mode);
/* glr_cancelled — whether the running goroutine's go.group is cancelled.
** Then glr_waitfd returns -ECANCELED at once (without calling k), and
** glr_sleep does not sleep (or ends early) and calls k: a module unaware
** of cancellation fails its operation through its usual path; glr_park
** does not check (check first if the park's work is handed elsewhere). */
GLR_API int glr_cancelled(lua_State *L);
/* glr_raise_cancelled — raises "cancelled" (or "cancelled: REASON"). */
GLR_API int glr_raise_cancelled(lua_State *L);

/* I/O helpers on a pd's fd: EINTR retried, SIGPIPE never raised, and the
** runtime's fault-injection switches (GOLUA_MOCKEAGAIN, GOLUA_CHAOS) applied. Bytes or
** -errno (-EAGAIN: wait with glr_waitfd). */
GLR_API ssize_t glr_read(lua_State *L, glr_pd *pd, void *buf, size_t n);
GLR_API ssize_t glr_writev(lua_State *L, glr_pd *pd, struct iovec *iov, int cnt);
GLR_API ssize_t glr_recvfrom(lua_State *L, glr_pd *pd, void *buf, size_t n,
                             struct sockaddr *sa, socklen_t *salen, int *flags);
GLR_API ssize_t glr_sendto(lua_State *L, glr_pd *pd, const void *buf, size_t n,
                           const struct sockaddr *sa, socklen_t salen);
/* glr_accept — accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC: fd or -errno. */
GLR_API int glr_accept(lua_State *L, glr_pd *pd, struct sockaddr *sa, socklen_t *salen);
/* glr_scratch — a per-P buffer of at least n bytes, valid until the
** goroutine next parks or calls back into Lua. */
GLR_API char *glr_scratch(lua_State *L, size_t n);

/* glr_sleep — parks the running goroutine until deadline, then k. */
GLR_API int glr_sleep(lua_State *L, int64_t deadline, lua_KContext ctx, lua_KFunction k);

/* glr_go — starts the function at stack index -(nargs+1) with the nargs
** values above it as a new goroutine of this VM (they are popped), and
** pushes its handle (usable with go.wait). Like `go(fn, ...)`. */
GLR_API void glr_go(lua_State *L, int nargs);

/* Generic parking, for modules with their own wake-up sources.
** glr_self — the running goroutine (NULL outside one). The pointer stays
** valid until the goroutine ends; do not keep it longer.
** glr_park — parks it until glr_ready; then k runs. One glr_ready per park;
** a glr_ready that comes before the goroutine is off its stack is kept, so
** the park returns at once (no lost wake-up). `reason` shows in deadlock
** reports. The goroutine counts as able to make progress while parked (it
** is waiting on the world), so it is never reported as a deadlock.
** glr_ready — from ANY thread (a worker thread, a callback of a C library):
** makes the goroutine runnable on its own P. */
typedef struct glr_g glr_g;
GLR_API glr_g *glr_self(lua_State *L);
GLR_API int glr_park(lua_State *L, const char *reason, lua_KContext ctx, lua_KFunction k);
GLR_API void glr_ready(glr_g *g);

/* glr_cannot_block — raises the runtime's error for a park that is not
** possible here ("cannot block inside a __gc finalizer", "attempt to yield
** across a C-call boundary", ...), prefixed with `what`. Never returns. */
GLR_API int glr_cannot_block(lua_State *L, const char *what);

/* Graceful shutdown (SIGINT/SIGTERM): the runtime calls fn(L, hook) on the
** thread of the VM that registered it, with that VM's main lua_State, outside
** any goroutine. Listeners use it to stop accepting. The hook's memory
** belongs to the caller and must stay valid until it is removed (or has
** run: a hook is removed before it is called). Same-VM thread only. */
typedef struct glr_shutdown_hook glr_shutdown_hook;
struct glr_shutdown_hook {
  void (*fn)(lua_State *L, glr_shutdown_hook *hook);
  glr_shutdown_hook *next_, *prev_; /* runtime-private links */
};
GLR_API void glr_shutdown_hook_add(lua_State *L, glr_shutdown_hook *hook);
GLR_API void glr_shutdown_hook_del(lua_State *L, glr_shutdown_hook *hook);
/* glr_shutting_down — the graceful shutdown (first SIGINT/SIGTERM) has
** begun: its hooks ran or are about to. Any thread. */
GLR_API int glr_shutting_down(lua_State *L);
/* glr_pd_wake — wakes the goroutine parked on pd in mode (GLR_READ or
** GLR_WRITE) as if the fd were ready: it tries its operation again. Same-VM
** thread only. */
GLR_API void glr_pd_wake(lua_State *L, glr_pd *pd, int mode);

/* glr_blocking_enter / glr_blocking_exit — bracket a call that blocks the
** thread (a synchronous C library call) and cannot park instead:
**     glr_blocking_enter(L); r = slow_call(...); glr_blocking_exit(L);
** No Lua API call may be made between the two, and nothing the call uses
** may belong to the VM. The call runs on the calling thread; if it lasts
** more than about 20 us while the VM has other work, the runtime hands the
** VM's P to another thread, so the VM's other goroutines keep running.
** glr_blocking_exit then waits until that same P is free again (between two
** goroutine slices) before it returns. Calls may nest; outside a goroutine,
** inside a __gc finalizer, or on a thread of the module's own, the pair does
** nothing and the call simply blocks. */
GLR_API void glr_blocking_enter(lua_State *L);
GLR_API void glr_blocking_exit(lua_State *L);

/* glr_version — the runtime's version as MAJOR*10000 + MINOR*100 + PATCH,
** to compare with GLR_VERSION_NUM the module was built against. */
#define GLR_VERSION_NUM (GLR_VERSION_MAJOR * 10000 + GLR_VERSION_MINOR * 100 + GLR_VERSION_PATCH)
GLR_API int glr_version(void);

/* glr_goid / glr_procid / glr_nprocs — current goroutine id (0 outside a
** goroutine), this VM's P index, number of Ps. */
GLR_API uint64_t glr_goid(lua_State *L);
GLR_API int glr_procid(lua_State *L);
GLR_API int glr_nprocs(lua_State *L);

/* glr_conn_wrap — pushes a goluarun connection object that owns fd from
** now on (conn:read/write/close, deadlines...). fd is made non-blocking and
** close-on-exec. `kind` is "tcp", "unix" or "stream" (pipes, ttys). Returns 1
** (the conn is on the stack); on failure closes fd and pushes nil, err
** (returns 2). */
GLR_API int glr_conn_wrap(lua_State *L, int fd, const char *kind);

/* Transports — how a connection moves its bytes. Every conn starts on the
** plain socket transport; glr_conn_settransport puts a library that speaks
** "want read / want write" (TLS, compression, a framing layer) between the
** conn's operations and its fd, and every conn method (all read forms,
** write, timeouts, deadlines, close from another goroutine, closewrite,
** go.spawn) then runs through it: the runtime parks the goroutine in the
** direction a call asks for and calls it again on the edge. The runtime's
** own TLS (bindings/tls.c) is such a transport.
**
** Each function gets the conn's `data` and its pollDesc; it moves bytes with
** glr_read / glr_writev on that pd (so the fault-injection switch applies)
** and returns bytes (read: 0 is EOF), -errno, GLR_WANT_READ / GLR_WANT_WRITE
** (park until the fd is readable / writable, then call again with the same
** arguments: a read may want writability and a write readability), or
** GLR_FAILED (the transport's own error: errmsg(data) is the message the
** operation returns). Calls are never concurrent: one goroutine at a time
** per direction, and the runtime makes a read that wants writability (or the
** reverse) take the other direction's lock first, so at most one goroutine
** waits on each direction of the pd. The handshake runs before the first
** operation in either direction, driven by exactly one goroutine while the
** others wait for it; its failure is final (every later operation fails
** with errmsg). All on the VM's thread. */
enum { GLR_WANT_READ = -0x10001, GLR_WANT_WRITE = -0x10002, GLR_FAILED = -0x10003 };
typedef struct glr_transport {
  ssize_t (*read)(lua_State *L, void *data, glr_pd *pd, void *buf, size_t n);
  ssize_t (*writev)(lua_State *L, void *data, glr_pd *pd, struct iovec *iov, int cnt);
  /* closewrite — end the sending direction (conn:closewrite); 0 when done.
  ** NULL: shutdown(fd, SHUT_WR). */
  int (*closewrite)(lua_State *L, void *data, glr_pd *pd);
  /* handshake — one attempt; 0 when complete. NULL: none. */
  int (*handshake)(lua_State *L, void *data, glr_pd *pd);
  /* errmsg — the message of the last GLR_FAILED; stays valid until close */
  const char *(*errmsg)(void *data);
  /* moved — the conn moved to the VM of L (go.spawn) and now has pd; data
  ** moved with it (it is used by one thread at a time). NULL: a conn on
  ** this transport cannot move (go.spawn raises). */
  void (*moved)(lua_State *L, void *data, glr_pd *pd);
  /* close — free data; best effort only (nothing may wait). The runtime
  ** closes the fd afterwards. */
  void (*close)(lua_State *L, void *data, glr_pd *pd);
} glr_transport;

/* glr_conn_settransport — installs tp with data on the stream conn at idx
** (tp must stay valid for the conn's life: a static). On success (0) the
** conn owns data and calls tp->close at the end; the handshake, if tp has
** one, runs on the next operation (or `conn:handshake()`). Fails without
** touching the conn: -EBADF (closed), -EBUSY (an operation is in progress,
** or bytes the old transport read are still buffered: they would bypass the
** new one). Raises if idx is not a stream conn. */
GLR_API int glr_conn_settransport(lua_State *L, int idx, const glr_transport *tp, void *data);

#ifdef __cplusplus
}
#endif
#endif
