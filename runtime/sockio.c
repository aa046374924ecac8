/* sockio.c — see sockio.h. */
#include "sockio.h"

#include <errno.h>
#include <unistd.h>

#include "netpoll.h"

/* mock_eagain — true when this call must fail with EAGAIN */
static bool mock_eagain(P *p, pollDesc *pd, int mode) {
  int *ctr = mode == PD_MODE_R ? &pd->mock_r : &pd->mock_w;
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
static bool read_would_block(pollDesc *pd) {
  return pd->drain_ok && pd->rdrained && !pd->rdhup && pd->registered &&
         atomic_load(&pd->rg) == PD_NIL;
}

ssize_t sock_read(P *p, pollDesc *pd, void *buf, size_t n) {
  if (p->rt->cfg.mock_eagain_r && n > 0) {
    if (mock_eagain(p, pd, PD_MODE_R)) return -EAGAIN;
    n = 1;
  } else if (n > 0 && read_would_block(pd)) {
    return -EAGAIN;
  }
  for (;;) {
    ssize_t r = read(pd->fd, buf, n);
    if (r >= 0) {
      pd->rdrained = r > 0 && (size_t)r < n && !p->rt->cfg.mock_eagain_r;
      return r;
    }
    if (errno == EAGAIN) pd->rdrained = !p->rt->cfg.mock_eagain_r;
    if (errno != EINTR) return -errno;
  }
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
    ssize_t r = cnt == 1 ? send(pd->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                         : sendmsg(pd->fd, &msg, MSG_NOSIGNAL);
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
    ssize_t r = sendto(pd->fd, buf, n, MSG_NOSIGNAL, sa, salen);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

int sock_accept(pollDesc *pd, struct sockaddr *sa, socklen_t *salen) {
  for (;;) {
    int fd = accept4(pd->fd, sa, salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != EINTR) return -errno;
  }
}
