/*
** c_echo.c — the hand-written baseline: a minimal single-threaded,
** edge-triggered epoll TCP echo server.
**
**   c_echo PORT        listens on 127.0.0.1:PORT, echoes every byte back
**
** Each fd is registered once for EPOLLIN | EPOLLOUT | EPOLLRDHUP with
** EPOLLET. On an event the connection first flushes what it owes, then reads
** until EAGAIN and writes each chunk straight back. If the peer stops
** reading and a write would block, the rest is kept in a per-connection
** buffer and reading stops until the next EPOLLOUT edge; that is the only
** per-connection memory, so an idle connection costs no user-space memory
** beyond one slot in the table below. SIGTERM ends it (default action).
*/

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes a connection still owes its peer (only while the peer is slow). */
struct owed {
  char *buf;
  size_t len;
  size_t off;
};

static struct owed *owed_tab;   /* indexed by fd */
static size_t owed_cap;
static char rbuf[65536];

static void die(const char *what) {
  perror(what);
  exit(1);
}

static struct owed *owed_of(int fd) {
  if ((size_t)fd >= owed_cap) {
    size_t cap = owed_cap ? owed_cap : 1024;
    while (cap <= (size_t)fd) cap *= 2;
    owed_tab = realloc(owed_tab, cap * sizeof *owed_tab);
    if (owed_tab == NULL) die("c_echo: realloc");
    memset(owed_tab + owed_cap, 0, (cap - owed_cap) * sizeof *owed_tab);
    owed_cap = cap;
  }
  return &owed_tab[fd];
}

static void conn_close(int fd) {
  struct owed *o = owed_of(fd);
  free(o->buf);
  *o = (struct owed){ 0 };
  close(fd);                    /* also removes it from the epoll set */
}

/* Write buf[0..len) from offset *off; 1 when all written, 0 when it would
** block, -1 on error. */
static int write_all(int fd, const char *buf, size_t len, size_t *off) {
  while (*off < len) {
    ssize_t n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL);
    if (n >= 0) { *off += (size_t)n; continue; }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
  return 1;
}

/* Keep the unwritten tail of a chunk until the next EPOLLOUT edge. */
static void owe(int fd, const char *buf, size_t len, size_t off) {
  struct owed *o = owed_of(fd);
  o->buf = malloc(len - off);
  if (o->buf == NULL) die("c_echo: malloc");
  memcpy(o->buf, buf + off, len - off);
  o->len = len - off;
  o->off = 0;
}

/* 1 if nothing is owed any more, 0 if still blocked, -1 on error. */
static int flush_owed(int fd) {
  struct owed *o = owed_of(fd);
  if (o->len == 0) return 1;
  int r = write_all(fd, o->buf, o->len, &o->off);
  if (r == 1) {
    free(o->buf);
    *o = (struct owed){ 0 };
  }
  return r;
}

static void on_conn(int fd) {
  int r = flush_owed(fd);
  if (r <= 0) {
    if (r < 0) conn_close(fd);
    return;
  }
  for (;;) {
    ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {               /* EOF or error */
      conn_close(fd);
      return;
    }
    size_t off = 0;
    r = write_all(fd, rbuf, (size_t)n, &off);
    if (r < 0) {
      conn_close(fd);
      return;
    }
    if (r == 0) {               /* peer is slow: wait for EPOLLOUT */
      owe(fd, rbuf, (size_t)n, off);
      return;
    }
  }
}

static void on_accept(int ep, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      perror("c_echo: accept4");   /* EMFILE and the like: try again later */
      return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                              .data.fd = fd };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      perror("c_echo: epoll_ctl");
      close(fd);
    }
  }
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("c_echo: socket");
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    die("c_echo: SO_REUSEADDR");
  struct sockaddr_in a = { .sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("c_echo: bind");
  if (listen(fd, 4096) != 0) die("c_echo: listen");
  return fd;
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);   /* best effort */
  }
}

int main(int argc, char **argv) {
  int port = argc == 2 ? atoi(argv[1]) : 0;
  if (port <= 0 || port > 65535) {
    fprintf(stderr, "usage: c_echo PORT\n");
    return 2;
  }
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  int lfd = listen_on(port);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("c_echo: epoll_create1");
  struct epoll_event lev = { .events = EPOLLIN | EPOLLET, .data.fd = lfd };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) die("c_echo: epoll_ctl");
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) die("c_echo: epoll_wait");
    for (int i = 0; i < n; i++) {
      if (evs[i].data.fd == lfd) on_accept(ep, lfd);
      else on_conn(evs[i].data.fd);
    }
  }
}
