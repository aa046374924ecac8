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

ssize_t sock_read(P *p, pollDesc *pd, void *buf, size_t n) {
  if (p->rt->mock_eagain_r && n > 0) {
    if (mock_eagain(p, pd, PD_MODE_R)) return -EAGAIN;
    n = 1;
  }
  for (;;) {
    ssize_t r = read(pd->fd, buf, n);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

ssize_t sock_writev(P *p, pollDesc *pd, struct iovec *iov, int cnt) {
  struct iovec one;
  if (p->rt->mock_eagain_w) {
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
    ssize_t r = sendmsg(pd->fd, &msg, MSG_NOSIGNAL);
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
  if (p->rt->mock_eagain_r && mock_eagain(p, pd, PD_MODE_R)) return -EAGAIN;
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
  if (p->rt->mock_eagain_w && mock_eagain(p, pd, PD_MODE_W)) return -EAGAIN;
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
