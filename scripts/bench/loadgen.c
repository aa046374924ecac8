/*
** loadgen.c — loopback load generator for the goluarun benchmarks.
**
**   loadgen -p PORT [-m echo|idle] [-c CONNS] [-s SIZE] [-d SECONDS]
**           [-w WARMUP] [-T TIMEOUT]
**
** One thread, one epoll instance (level-triggered), non-blocking sockets.
** It connects only to 127.0.0.1; there is no option to aim it elsewhere.
**
** echo  Every connection sends SIZE bytes and waits for the same SIZE bytes
**       back before it sends again (one request in flight per connection).
**       Each request carries its own byte pattern (connection id, sequence
**       number, offset), so a reply that is short, late, duplicated or from
**       another connection is caught. WARMUP seconds run first and are not
**       counted. A connection that fails (refused, reset, early EOF) counts
**       one error and is reopened 10 ms later; a wrong reply counts one bad
**       reply, and the connection is reopened as well since its stream can
**       no longer be trusted.
** idle  Opens CONNS connections (at most 128 connects in flight), makes one
**       echo exchange on each to prove it works, prints "READY open=N",
**       holds them for SECONDS (any byte or close from the server during the
**       hold counts as "dropped"), then makes one more exchange on each and
**       prints how many answered correctly.
**
** Output: a human line on stderr and one machine line on stdout:
**   RESULT mode=echo port=P conns=C size=S dur_s=D reqs=N rps=R mbps=M
**          p50_us=.. p99_us=.. max_us=.. errors=E bad=B cli_cpu=U
**   RESULT mode=idle port=P conns=C size=S hold_s=D open=O ok=K dropped=X
**          errors=E bad=B
** cli_cpu is this process's own CPU use over the measured interval, in
** cores; near 1.00 means the figure is bounded by the load generator.
**
** Exit status: 0 if the run completed (errors are reported, not fatal),
** 2 on bad usage, 1 if nothing could be measured (no request completed in
** echo mode, no connection opened in idle mode).
*/

#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS       100000
#define MAX_SIZE        (1 << 20)
#define MAX_SECONDS     60.0
#define IDLE_INFLIGHT   128     /* idle mode: connects + first exchanges at once */
#define RETRY_NS        (10 * 1000 * 1000LL)
#define EVENT_BATCH     256

enum lg_mode { MODE_ECHO, MODE_IDLE };

/* One word per connection says where it is; nothing else is a flag. */
enum conn_state {
  CS_CLOSED,      /* no socket; echo mode reopens it at retry_at */
  CS_CONNECTING,  /* non-blocking connect() in progress, waiting EPOLLOUT */
  CS_SENDING,     /* request partly written, waiting EPOLLOUT */
  CS_RECEIVING,   /* request written, reading the reply (EPOLLIN) */
  CS_HOLDING,     /* idle mode: first exchange done, held open (EPOLLIN) */
  CS_FINISHED,    /* idle mode: final check passed; or gave up (see fail) */
};

struct conn {
  int fd;
  enum conn_state st;
  uint32_t id;
  uint32_t events;        /* events currently registered with epoll */
  uint64_t seq;           /* request number on this connection */
  int sent;               /* bytes of tx written */
  int got;                /* bytes of rx read */
  int exchanges;          /* completed exchanges (idle mode uses it) */
  int failed;             /* idle mode: this connection is lost */
  int64_t t_req;          /* when the current request started (ns) */
  int64_t retry_at;       /* CS_CLOSED: when to reconnect (ns) */
  unsigned char *tx;      /* current request */
  unsigned char *rx;      /* reply being read */
};

struct options {
  int port;
  int conns;
  int size;
  double dur;
  double warm;
  double timeout;         /* idle mode: limit for the open and check phases */
  enum lg_mode mode;
};

/* Counters of one measured interval. */
struct stats {
  uint64_t reqs;
  uint64_t errors;
  uint64_t bad;
  uint64_t dropped;
  uint64_t hist[2048];
  uint64_t lat_max;
};

struct loadgen {
  struct options o;
  int ep;
  struct conn *c;
  struct stats st;
  int counting;           /* echo: past the warm-up */
  int inflight;           /* idle: connections in connect or exchange */
  struct sockaddr_in addr;
};

/* ---- time and small helpers -------------------------------------------- */

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      perror("loadgen: setrlimit(RLIMIT_NOFILE)");   /* keep going: may suffice */
  }
}

/* ---- latency histogram: log-linear, 32 steps per power of two (~3 %) ---- */

static int hist_index(uint64_t v) {
  if (v < 32) return (int)v;
  int e = 63 - __builtin_clzll(v);          /* e >= 5 */
  return 32 + (e - 5) * 32 + (int)((v >> (e - 5)) & 31);
}

static double hist_value(int i) {          /* middle of bucket i, ns */
  if (i < 32) return i;
  int e = (i - 32) / 32 + 5;
  uint64_t lo = (uint64_t)(32 + (i - 32) % 32) << (e - 5);
  return (double)lo + (double)((uint64_t)1 << (e - 5)) / 2.0;
}

static double hist_pct(const struct stats *s, double p) {
  uint64_t want = (uint64_t)(p * (double)s->reqs + 0.5), seen = 0;
  if (want < 1) want = 1;
  for (int i = 0; i < 2048; i++) {
    seen += s->hist[i];
    if (seen >= want) return hist_value(i);
  }
  return (double)s->lat_max;
}

static void record(struct loadgen *lg, int64_t lat) {
  if (!lg->counting) return;
  uint64_t v = lat > 0 ? (uint64_t)lat : 0;
  lg->st.reqs++;
  lg->st.hist[hist_index(v)]++;
  if (v > lg->st.lat_max) lg->st.lat_max = v;
}

/* ---- payload ------------------------------------------------------------ */

/* Fill c->tx with the pattern of request c->seq: every byte depends on the
** connection, the request and the offset. */
static void fill_request(struct conn *c, int size) {
  uint64_t x = ((uint64_t)c->id << 32) ^ (c->seq * 0x9E3779B97F4A7C15ULL);
  for (int i = 0; i < size; i++) {
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;       /* xorshift64 */
    c->tx[i] = (unsigned char)((x * 0x2545F4914F6CDD1DULL) >> 56);
  }
}

/* ---- epoll registration ------------------------------------------------- */

static void want(struct loadgen *lg, struct conn *c, uint32_t ev) {
  if (c->events == ev) return;
  struct epoll_event e = { .events = ev, .data.ptr = c };
  int op = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(lg->ep, op, c->fd, &e) != 0) {
    perror("loadgen: epoll_ctl");
    exit(1);
  }
  c->events = ev;
}

/* ---- connection life ---------------------------------------------------- */

static void conn_close(struct loadgen *lg, struct conn *c, int64_t now) {
  if (c->fd >= 0) close(c->fd);              /* also leaves the epoll set */
  if (c->st == CS_CONNECTING || c->st == CS_SENDING || c->st == CS_RECEIVING)
    if (lg->o.mode == MODE_IDLE) lg->inflight--;
  c->fd = -1;
  c->events = 0;
  c->st = CS_CLOSED;
  c->retry_at = now + RETRY_NS;
}

/* A failure of the world (refused, reset, EOF): counted, then reopened in
** echo mode or given up in idle mode. */
static void conn_fail(struct loadgen *lg, struct conn *c, int is_bad) {
  if (is_bad) lg->st.bad++;
  else lg->st.errors++;
  conn_close(lg, c, now_ns());
  if (lg->o.mode == MODE_IDLE) {
    c->failed = 1;
    c->st = CS_FINISHED;
  }
}

static void send_more(struct loadgen *lg, struct conn *c);

/* Start the next request on an open connection. */
static void start_request(struct loadgen *lg, struct conn *c) {
  c->seq++;
  fill_request(c, lg->o.size);
  c->sent = 0;
  c->got = 0;
  c->t_req = now_ns();
  c->st = CS_SENDING;
  send_more(lg, c);
}

static void send_more(struct loadgen *lg, struct conn *c) {
  while (c->sent < lg->o.size) {
    ssize_t n = send(c->fd, c->tx + c->sent, (size_t)(lg->o.size - c->sent),
                     MSG_NOSIGNAL);
    if (n > 0) { c->sent += (int)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want(lg, c, EPOLLOUT | EPOLLIN);      /* read the echo meanwhile */
      return;
    }
    conn_fail(lg, c, 0);
    return;
  }
  c->st = CS_RECEIVING;
  want(lg, c, EPOLLIN);
}

static void conn_open(struct loadgen *lg, struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("loadgen: socket");
    exit(1);                                  /* out of fds: a setup problem */
  }
  int one = 1;
  /* Best effort: without NODELAY the figures are only a little worse. */
  (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->events = 0;
  c->exchanges = 0;
  if (lg->o.mode == MODE_IDLE) lg->inflight++;
  int r = connect(c->fd, (struct sockaddr *)&lg->addr, sizeof lg->addr);
  if (r == 0) { start_request(lg, c); return; }
  if (errno == EINPROGRESS) {
    c->st = CS_CONNECTING;
    want(lg, c, EPOLLOUT);
    return;
  }
  c->st = CS_CONNECTING;                      /* so conn_fail balances inflight */
  conn_fail(lg, c, 0);
}

static void on_connected(struct loadgen *lg, struct conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    conn_fail(lg, c, 0);
    return;
  }
  start_request(lg, c);
}

/* A whole reply arrived and matched. */
static void on_reply(struct loadgen *lg, struct conn *c) {
  c->exchanges++;
  if (lg->o.mode == MODE_ECHO) {
    record(lg, now_ns() - c->t_req);
    start_request(lg, c);
    return;
  }
  lg->inflight--;
  c->st = c->exchanges == 1 ? CS_HOLDING : CS_FINISHED;
  if (c->st == CS_HOLDING) {
    want(lg, c, EPOLLIN | EPOLLRDHUP);
    return;
  }
  conn_close(lg, c, now_ns());
  c->st = CS_FINISHED;
}

static void recv_more(struct loadgen *lg, struct conn *c) {
  for (;;) {
    if (c->got == lg->o.size) {               /* more than was sent so far */
      conn_fail(lg, c, 1);
      return;
    }
    ssize_t n = recv(c->fd, c->rx + c->got, (size_t)(lg->o.size - c->got), 0);
    if (n > 0) {
      c->got += (int)n;
      if (c->got < lg->o.size) continue;
      if (memcmp(c->rx, c->tx, (size_t)lg->o.size) != 0) {
        conn_fail(lg, c, 1);
        return;
      }
      on_reply(lg, c);
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    conn_fail(lg, c, 0);                      /* EOF or reset */
    return;
  }
}

/* While held, the server must stay silent and keep the connection open. */
static void on_hold_event(struct loadgen *lg, struct conn *c) {
  lg->st.dropped++;
  conn_close(lg, c, now_ns());
  c->failed = 1;
  c->st = CS_FINISHED;
}

static void dispatch(struct loadgen *lg, struct conn *c, uint32_t ev) {
  switch (c->st) {
  case CS_CONNECTING: on_connected(lg, c); break;
  case CS_SENDING:
    /* A large request: take in what is already echoed, so that neither
    ** side blocks with full buffers while the other does the same. */
    if (ev & EPOLLIN) recv_more(lg, c);
    if (c->st == CS_SENDING) send_more(lg, c);
    break;
  case CS_RECEIVING:
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) recv_more(lg, c);
    break;
  case CS_HOLDING:    on_hold_event(lg, c); break;
  case CS_CLOSED:
  case CS_FINISHED:   break;                  /* stale event in this batch */
  }
}

/* One epoll_wait and its events; timeout in ms. */
static void poll_once(struct loadgen *lg, int timeout_ms) {
  struct epoll_event ev[EVENT_BATCH];
  int n = epoll_wait(lg->ep, ev, EVENT_BATCH, timeout_ms);
  if (n < 0 && errno != EINTR) {
    perror("loadgen: epoll_wait");
    exit(1);
  }
  for (int i = 0; i < n; i++)
    dispatch(lg, ev[i].data.ptr, ev[i].events);
}

static int ms_until(int64_t deadline, int cap_ms) {
  int64_t left = deadline - now_ns();
  if (left <= 0) return 0;
  int64_t ms = (left + 999999) / 1000000;
  return ms < cap_ms ? (int)ms : cap_ms;
}

/* ---- echo mode ---------------------------------------------------------- */

static void reopen_due(struct loadgen *lg, int64_t now) {
  for (int i = 0; i < lg->o.conns; i++)
    if (lg->c[i].st == CS_CLOSED && lg->c[i].retry_at <= now)
      conn_open(lg, &lg->c[i]);
}

static void run_until(struct loadgen *lg, int64_t end) {
  int64_t now;
  while ((now = now_ns()) < end) {
    reopen_due(lg, now);
    poll_once(lg, ms_until(end, 10));
  }
}

static int run_echo(struct loadgen *lg) {
  int64_t t0 = now_ns();
  for (int i = 0; i < lg->o.conns; i++) lg->c[i].retry_at = t0;
  run_until(lg, t0 + (int64_t)(lg->o.warm * 1e9));
  memset(&lg->st, 0, sizeof lg->st);
  lg->counting = 1;
  double cpu0 = cpu_seconds();
  int64_t start = now_ns();
  run_until(lg, start + (int64_t)(lg->o.dur * 1e9));
  double secs = (double)(now_ns() - start) / 1e9;
  double cpu = (cpu_seconds() - cpu0) / secs;
  const struct stats *s = &lg->st;
  double rps = (double)s->reqs / secs;
  double mbps = rps * lg->o.size / 1e6;
  double p50 = hist_pct(s, 0.50) / 1e3, p99 = hist_pct(s, 0.99) / 1e3;
  fprintf(stderr, "echo 127.0.0.1:%d conns=%d size=%d %.1fs: %.0f req/s, "
          "%.2f MB/s, p50 %.1fus p99 %.1fus max %.1fus, errors %llu, "
          "bad %llu, client cpu %.2f\n", lg->o.port, lg->o.conns, lg->o.size,
          secs, rps, mbps, p50, p99, s->lat_max / 1e3,
          (unsigned long long)s->errors, (unsigned long long)s->bad, cpu);
  printf("RESULT mode=echo port=%d conns=%d size=%d dur_s=%.3f reqs=%llu "
         "rps=%.0f mbps=%.3f p50_us=%.1f p99_us=%.1f max_us=%.1f errors=%llu "
         "bad=%llu cli_cpu=%.2f\n", lg->o.port, lg->o.conns, lg->o.size, secs,
         (unsigned long long)s->reqs, rps, mbps, p50, p99, s->lat_max / 1e3,
         (unsigned long long)s->errors, (unsigned long long)s->bad, cpu);
  fflush(stdout);
  return s->reqs > 0 ? 0 : 1;
}

/* ---- idle mode ---------------------------------------------------------- */

static int count_state(const struct loadgen *lg, enum conn_state st) {
  int n = 0;
  for (int i = 0; i < lg->o.conns; i++) n += lg->c[i].st == st;
  return n;
}

/* Phase 1: open every connection and make the first exchange. */
static void idle_open(struct loadgen *lg) {
  int64_t limit = now_ns() + (int64_t)(lg->o.timeout * 1e9);
  int next = 0;
  while (now_ns() < limit) {
    while (next < lg->o.conns && lg->inflight < IDLE_INFLIGHT)
      conn_open(lg, &lg->c[next++]);
    if (next == lg->o.conns && lg->inflight == 0) return;
    poll_once(lg, ms_until(limit, 100));
  }
  for (int i = 0; i < lg->o.conns; i++)       /* too slow: give up on the rest */
    if (lg->c[i].st != CS_HOLDING && lg->c[i].st != CS_FINISHED)
      conn_fail(lg, &lg->c[i], 0);
  for (int i = next; i < lg->o.conns; i++) {
    lg->c[i].failed = 1;
    lg->c[i].st = CS_FINISHED;
    lg->st.errors++;
  }
}

/* Phase 3: one more exchange on every connection still held. */
static void idle_check(struct loadgen *lg) {
  int64_t limit = now_ns() + (int64_t)(lg->o.timeout * 1e9);
  for (int i = 0; i < lg->o.conns; i++)
    if (lg->c[i].st == CS_HOLDING) {
      lg->inflight++;
      start_request(lg, &lg->c[i]);
    }
  while (lg->inflight > 0 && now_ns() < limit)
    poll_once(lg, ms_until(limit, 100));
  for (int i = 0; i < lg->o.conns; i++)
    if (lg->c[i].st == CS_SENDING || lg->c[i].st == CS_RECEIVING)
      conn_fail(lg, &lg->c[i], 0);
}

static int run_idle(struct loadgen *lg) {
  idle_open(lg);
  int open = count_state(lg, CS_HOLDING);
  printf("READY open=%d failed=%d\n", open, lg->o.conns - open);
  fflush(stdout);
  run_until(lg, now_ns() + (int64_t)(lg->o.dur * 1e9));  /* the hold */
  idle_check(lg);
  int ok = 0;
  for (int i = 0; i < lg->o.conns; i++)
    ok += lg->c[i].st == CS_FINISHED && !lg->c[i].failed;
  const struct stats *s = &lg->st;
  fprintf(stderr, "idle 127.0.0.1:%d conns=%d size=%d: opened %d, held %.1fs, "
          "%d answered after the hold, dropped %llu, errors %llu, bad %llu\n",
          lg->o.port, lg->o.conns, lg->o.size, open, lg->o.dur, ok,
          (unsigned long long)s->dropped, (unsigned long long)s->errors,
          (unsigned long long)s->bad);
  printf("RESULT mode=idle port=%d conns=%d size=%d hold_s=%.1f open=%d ok=%d "
         "dropped=%llu errors=%llu bad=%llu\n", lg->o.port, lg->o.conns,
         lg->o.size, lg->o.dur, open, ok, (unsigned long long)s->dropped,
         (unsigned long long)s->errors, (unsigned long long)s->bad);
  fflush(stdout);
  return open > 0 ? 0 : 1;
}

/* ---- setup -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
    "usage: loadgen -p PORT [-m echo|idle] [-c CONNS] [-s SIZE] [-d SECONDS]\n"
    "               [-w WARMUP] [-T TIMEOUT]\n"
    "  connects to 127.0.0.1:PORT only; defaults: -m echo -c 50 -s 64 -d 5\n"
    "  -w warm-up seconds not counted (echo), -T open/check limit (idle, 30)\n");
  exit(2);
}

static double arg_num(const char *s, double lo, double hi) {
  char *end;
  double v = strtod(s, &end);
  if (*s == '\0' || *end != '\0' || v < lo || v > hi) usage();
  return v;
}

static void parse_args(struct options *o, int argc, char **argv) {
  *o = (struct options){ .conns = 50, .size = 64, .dur = 5, .warm = 0,
                         .timeout = 30, .mode = MODE_ECHO };
  int opt;
  while ((opt = getopt(argc, argv, "p:m:c:s:d:w:T:")) != -1) {
    switch (opt) {
    case 'p': o->port = (int)arg_num(optarg, 1, 65535); break;
    case 'c': o->conns = (int)arg_num(optarg, 1, MAX_CONNS); break;
    case 's': o->size = (int)arg_num(optarg, 1, MAX_SIZE); break;
    case 'd': o->dur = arg_num(optarg, 0, MAX_SECONDS); break;
    case 'w': o->warm = arg_num(optarg, 0, MAX_SECONDS); break;
    case 'T': o->timeout = arg_num(optarg, 0.1, MAX_SECONDS); break;
    case 'm':
      if (strcmp(optarg, "echo") == 0) o->mode = MODE_ECHO;
      else if (strcmp(optarg, "idle") == 0) o->mode = MODE_IDLE;
      else usage();
      break;
    default: usage();
    }
  }
  if (o->port == 0 || optind != argc) usage();
}

static void setup(struct loadgen *lg) {
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  lg->ep = epoll_create1(EPOLL_CLOEXEC);
  lg->c = calloc((size_t)lg->o.conns, sizeof *lg->c);
  if (lg->ep < 0 || lg->c == NULL) {
    perror("loadgen: setup");
    exit(1);
  }
  for (int i = 0; i < lg->o.conns; i++) {
    struct conn *c = &lg->c[i];
    c->fd = -1;
    c->id = (uint32_t)i;
    c->tx = malloc((size_t)lg->o.size);
    c->rx = malloc((size_t)lg->o.size);
    if (c->tx == NULL || c->rx == NULL) {
      perror("loadgen: malloc");
      exit(1);
    }
  }
  lg->addr.sin_family = AF_INET;
  lg->addr.sin_port = htons((uint16_t)lg->o.port);
  lg->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   /* 127.0.0.1 only */
}

int main(int argc, char **argv) {
  static struct loadgen lg;
  parse_args(&lg.o, argc, argv);
  setup(&lg);
  return lg.o.mode == MODE_ECHO ? run_echo(&lg) : run_idle(&lg);
}
