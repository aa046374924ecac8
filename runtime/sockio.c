/* sockio.c — see sockio.h. */
#include "sockio.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "netpoll.h"

/* ---------- chaos (GOLUA_CHAOS=SEED[:RATE]) ----------
** With probability RATE a call gets one fault, drawn from the P's seeded
** stream (p->chaos) among those its kind of call can meet:
**   EINTR   the system call is "interrupted" before it runs and retried,
**           as a real EINTR is: invisible above this file;
**   SHORT   a read or write moves 1..n-1 of its n bytes;
**   EAGAIN  a spurious EAGAIN with a synthetic readiness event (mockeagain);
**   RESET   ECONNRESET (reads, writes) and EPIPE (writes): the socket is
**           shut down first, so the connection really is dead for both
**           peers and every later call fails as after a real reset;
**   EMFILE  accept finds the process out of fds: the pending connection
**           stays queued and the listener backs off (lnet.c). */
enum { CH_NONE, CH_EINTR, CH_SHORT, CH_EAGAIN, CH_RESET, CH_PIPE, CH_EMFILE };

static const int ch_read[] = {CH_EINTR, CH_SHORT, CH_EAGAIN, CH_RESET};
static const int ch_write[] = {CH_EINTR, CH_SHORT, CH_EAGAIN, CH_RESET, CH_PIPE};
static const int ch_dgram[] = {CH_EINTR, CH_EAGAIN};
static const int ch_accept[] = {CH_EINTR, CH_EAGAIN, CH_EMFILE};
#define CH_PICK(p, kinds) chaos_pick(p, kinds, sizeof kinds / sizeof kinds[0])

static int chaos_pick(P *p, const int *kinds, size_t n) {
  uint32_t ppm = p->rt->cfg.chaos_ppm;
  if (GLR_LIKELY(ppm == 0) || !chaos_hit(&p->chaos, ppm)) return CH_NONE;
  return kinds[chaos_below(&p->chaos, n)];
}

/* chaos_fail — the faults that end the call: -errno */
static ssize_t chaos_fail(P *p, pollDesc *pd, int kind, int mode) {
  switch (kind) {
    case CH_EAGAIN: netpoll_mock_ready(p, pd, mode); return -EAGAIN;
    case CH_EMFILE: return -EMFILE;
    case CH_RESET: shutdown(pd->fd, SHUT_RDWR); return -ECONNRESET;
    default: shutdown(pd->fd, SHUT_RDWR); return -EPIPE; /* CH_PIPE */
  }
}

/* mock_eagain — true when this call must fail with EAGAIN */
static bool mock_eagain(P *p, pollDesc *pd, int mode) {
  unsigned char *ctr = mode == PD_MODE_R ? &pd->mock_r : &pd->mock_w;
  if ((*ctr)++ % 2 != 0) return false;
  netpoll_mock_ready(p, pd, mode);
  return true;
}

/* Drained reads: with edge-triggered epoll, a read that returned less than
** it asked for (or EAGAIN) proves the socket was empty at that moment, and
** any byte arriving later produces a new edge, which sets rg to READY (or
** wakes the parked reader). So while rdrained is set and rg is still nil, a
** read would only return EAGAIN: skip the system call and let the caller
** park. This saves the EAGAIN read of every request/response exchange.
** Only for TCP sockets (drain_ok: a tty returns one line per read, a Unix
** socket may stop at a credentials boundary), once the fd is registered (no
** edges before), never after RDHUP/HUP/ERR was seen (a short read does not
** consume a pending EOF or error, and its edge may already be spent), and
** never under fault injection (a mocked short read proves nothing). */
bool sock_read_would_block(pollDesc *pd) {
  return pd->drain_ok && pd->rdrained && !pd->rdhup && pd->registered &&
         atomic_load(&pd->rg) == PD_NIL;
}

ssize_t sock_read(P *p, pollDesc *pd, void *buf, size_t n) {
  if (p->rt->cfg.mock_eagain_r && n > 0) {
    if (mock_eagain(p, pd, PD_MODE_R)) return -EAGAIN;
    n = 1;
  } else if (n > 0 && sock_read_would_block(pd)) {
    return -EAGAIN;
  }
  for (;;) {
    int ch = n > 0 ? CH_PICK(p, ch_read) : CH_NONE;
    if (ch == CH_EINTR) continue;
    if (ch == CH_SHORT && n > 1) n = 1 + (size_t)chaos_below(&p->chaos, n - 1);
    else if (ch > CH_SHORT) return chaos_fail(p, pd, ch, PD_MODE_R);
    /* (a TCP socket: recv, which skips read's file layer: ~0.05 us a
    ** call in a loopback microbenchmark, runtime/HACKING.md) */
    ssize_t r = pd->drain_ok ? recv(pd->fd, buf, n, 0) : read(pd->fd, buf, n);
    if (r >= 0) {
      pd->rdrained = r > 0 && (size_t)r < n && !p->rt->cfg.mock_eagain_r;
      return r;
    }
    if (errno == EAGAIN) pd->rdrained = !p->rt->cfg.mock_eagain_r;
    if (errno != EINTR) return -errno;
  }
}

/* pieces of at most this many bytes together are copied into one buffer
** and sent as one: the kernel's copy costs per piece (its checks, its
** iterator steps) more than a memcpy of a small answer here */
#define SEND_GATHER 2048

/* sendmsg of iov[0 .. cnt), or one send of their bytes gathered when they
** are small (measured first: a large write copies nothing here) */
static ssize_t send_small(int fd, struct iovec *iov, int cnt, struct msghdr *msg) {
  size_t total = 0;
  for (int i = 0; i < cnt && total <= SEND_GATHER; i++) total += iov[i].iov_len;
  if (total > SEND_GATHER) return sendmsg(fd, msg, MSG_NOSIGNAL);
  char buf[SEND_GATHER];
  size_t n = 0;
  for (int i = 0; i < cnt; i++) {
    memcpy(buf + n, iov[i].iov_base, iov[i].iov_len);
    n += iov[i].iov_len;
  }
  return send(fd, buf, n, MSG_NOSIGNAL);
}

ssize_t sock_writev(P *p, pollDesc *pd, struct iovec *iov, int cnt) {
  struct iovec one;
  if (p->rt->cfg.mock_eagain_w) {
    if (mock_eagain(p, pd, PD_MODE_W)) return -EAGAIN;
    int i = 0;
    while (i < cnt && iov[i].iov_len == 0) i++;
    if (i == cnt) return 0;
    one.iov_base = iov[i].iov_base;
    one.iov_len = 1;
    iov = &one;
    cnt = 1;
  }
  struct msghdr msg = {0};
  msg.msg_iov = iov;
  msg.msg_iovlen = (size_t)cnt;
  for (;;) {
    int ch = CH_PICK(p, ch_write);
    if (ch == CH_EINTR) continue;
    if (ch == CH_SHORT) { /* a part of the first non-empty buffer */
      int i = 0;
      while (i < cnt && iov[i].iov_len == 0) i++;
      if (i == cnt) return 0;
      one.iov_base = iov[i].iov_base;
      one.iov_len = iov[i].iov_len > 1 ? 1 + (size_t)chaos_below(&p->chaos, iov[i].iov_len - 1) : 1;
      iov = &one;
      cnt = 1;
      msg.msg_iov = iov;
      msg.msg_iovlen = 1;
    } else if (ch != CH_NONE) {
      return chaos_fail(p, pd, ch, PD_MODE_W);
    }
    ssize_t r = cnt == 1 ? send(pd->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                         : send_small(pd->fd, iov, cnt, &msg);
    if (r >= 0) return r;
    if (errno == ENOTSOCK) { /* a pipe or tty wrapped as a conn */
      r = writev(pd->fd, iov, cnt);
      if (r >= 0) return r;
    }
    if (errno != EINTR) return -errno;
  }
}

ssize_t sock_recvfrom(P *p, pollDesc *pd, void *buf, size_t n,
                      struct sockaddr *sa, socklen_t *salen, int *flags) {
  if (p->rt->cfg.mock_eagain_r && mock_eagain(p, pd, PD_MODE_R)) return -EAGAIN;
  struct iovec iov = {buf, n};
  struct msghdr msg = {0};
  msg.msg_name = sa;
  msg.msg_namelen = salen ? *salen : 0;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  for (;;) {
    int ch = CH_PICK(p, ch_dgram);
    if (ch == CH_EINTR) continue;
    if (ch != CH_NONE) return chaos_fail(p, pd, ch, PD_MODE_R);
    ssize_t r = recvmsg(pd->fd, &msg, 0);
    if (r >= 0) {
      if (salen) *salen = msg.msg_namelen;
      if (flags) *flags = msg.msg_flags;
      return r;
    }
    if (errno != EINTR) return -errno;
  }
}

ssize_t sock_sendto(P *p, pollDesc *pd, const void *buf, size_t n,
                    const struct sockaddr *sa, socklen_t salen) {
  if (p->rt->cfg.mock_eagain_w && mock_eagain(p, pd, PD_MODE_W)) return -EAGAIN;
  for (;;) {
    int ch = CH_PICK(p, ch_dgram);
    if (ch == CH_EINTR) continue;
    if (ch != CH_NONE) return chaos_fail(p, pd, ch, PD_MODE_W);
    ssize_t r = sendto(pd->fd, buf, n, MSG_NOSIGNAL, sa, salen);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

int sock_accept(P *p, pollDesc *pd, struct sockaddr *sa, socklen_t *salen) {
  for (;;) {
    int ch = CH_PICK(p, ch_accept);
    if (ch == CH_EINTR) continue;
    if (ch != CH_NONE) return (int)chaos_fail(p, pd, ch, PD_MODE_R);
    int fd = accept4(pd->fd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != EINTR) return -errno;
  }
}
