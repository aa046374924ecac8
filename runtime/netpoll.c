/* netpoll.c — see netpoll.h. */
#include "netpoll.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "iowait.h"

#define NETPOLL_BATCH 128

typedef struct mockev {
  uint64_t tag;
  int mode;
} mockev;

int netpoll_init(P *p) {
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) return -errno;
  p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->evfd < 0) {
    int e = errno;
    close(p->epfd);
    return -e;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
  if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0) {
    int e = errno;
    close(p->epfd);
    close(p->evfd);
    return -e;
  }
  return 0;
}

void netpoll_free(P *p) {
  if (p->epfd >= 0) close(p->epfd);
  if (p->evfd >= 0) close(p->evfd);
  p->epfd = p->evfd = -1;
  free(p->mockready);
  p->mockready = NULL;
}

int netpoll_open(P *p, pollDesc *pd) {
  struct epoll_event ev;
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = pd_tag(pd);
  if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, pd->fd, &ev) < 0) return -errno;
  pd->owner = p;
  pd->registered = true;
  return 0;
}

void netpoll_close(P *p, pollDesc *pd) {
  if (!pd->registered) return;
  struct epoll_event ev = {0};
  /* ignore errors: the fd may already be gone from the set if a dup was
  ** closed; nothing to undo either way */
  (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, pd->fd, &ev);
  pd->registered = false;
}

void netpoll_break(P *p) {
  uint64_t one = 1;
  ssize_t n;
  do n = write(p->evfd, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  /* EAGAIN means the counter is saturated: a wake-up is already pending */
}

static void drain_eventfd(P *p) {
  uint64_t v;
  ssize_t n;
  do n = read(p->evfd, &v, sizeof v);
  while (n < 0 && errno == EINTR);
}

int netpoll_dispatch(P *p, uint64_t tag, uint32_t events) {
  pollDesc *pd = pd_from_tag(tag);
  if (!pd) return 0; /* stale: fd closed (and maybe reused) since */
  int n = 0;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) pd->rdhup = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
    n += iowait_wake(p, pd, PD_MODE_W, true, WAKE_READY);
  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return n;
  if (pd->watch) iowait_fire_watch(p, pd, events); /* may free pd: last */
  else n += iowait_wake(p, pd, PD_MODE_R, true, WAKE_READY);
  return n;
}

void netpoll_mock_ready(P *p, pollDesc *pd, int mode) {
  if (p->nmockready == p->capmockready) {
    p->capmockready = p->capmockready ? p->capmockready * 2 : 64;
    p->mockready = x_realloc(p->mockready, p->capmockready * sizeof(mockev));
  }
  mockev *v = p->mockready;
  v[p->nmockready++] = (mockev){pd_tag(pd), mode};
}

bool netpoll_has_mock(P *p) { return p->nmockready > 0; }

static int dispatch_mock(P *p) {
  int n = 0;
  size_t cnt = p->nmockready;
  mockev *v = p->mockready;
  p->nmockready = 0;
  for (size_t i = 0; i < cnt; i++)
    n += netpoll_dispatch(p, v[i].tag, v[i].mode == PD_MODE_R ? EPOLLIN : EPOLLOUT);
  return n;
}

int netpoll(P *p, int64_t timeout) {
  struct epoll_event evs[NETPOLL_BATCH];
  int ms;
  if (p->nmockready) timeout = 0;
  if (timeout < 0) ms = -1;
  else if (timeout == 0) ms = 0;
  else if (timeout > INT64_C(1000000) * 1000000) ms = 1000000000;
  else ms = (int)((timeout + NS_PER_MS - 1) / NS_PER_MS);
  int n = epoll_wait(p->epfd, evs, NETPOLL_BATCH, ms);
  if (n < 0) {
    if (errno != EINTR) rt_throw("netpoll: epoll_wait failed");
    n = 0;
  }
  atomic_store_explicit(&p->lastpoll, mono_now(), memory_order_relaxed);
  int woke = 0;
  for (int i = 0; i < n; i++) {
    if (evs[i].data.u64 == 0) {
      drain_eventfd(p);
      continue;
    }
    woke += netpoll_dispatch(p, evs[i].data.u64, evs[i].events);
  }
  if (p->nmockready) woke += dispatch_mock(p);
  return woke;
}
