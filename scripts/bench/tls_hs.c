/*
** tls_hs.c — TLS load client for scripts/bench/tls.sh (OpenSSL 3).
**
**   tls_hs -p PORT -m full|resume|idle|echo [-c CONNS] [-d SECONDS]
**          [-w WARMUP] [-s SIZE] [-n SERVERNAME] [-a CAFILE] [-C SUITES]
**
** One thread, one epoll instance (edge-triggered, each socket registered
** once for input and output), non-blocking sockets and non-blocking
** OpenSSL: every SSL call runs until it returns WANT_READ / WANT_WRITE and
** the next edge of either kind retries it. It connects only to 127.0.0.1.
** Every connection is TLS 1.3 only with the one cipher suite SUITES
** (default TLS_AES_256_GCM_SHA384, the first wrk and most clients offer),
** SNI SERVERNAME (default localhost); with -a the chain and host name are
** verified against CAFILE, else they are not (the CertificateVerify
** signature always is: TLS 1.3 requires it).
**
** full    CONNS connections at a time, each: connect, full handshake, one
**         HTTP/1.1 GET / (keep-alive), read the whole response
**         (Content-Length), close with RST (SO_LINGER 0, so neither side
**         keeps a TIME_WAIT), start again. No session is ever offered.
** resume  the same, but each connection offers the session (TLS 1.3
**         ticket) the previous connection of its slot received; "resumed"
**         counts handshakes the server accepted as resumptions.
** echo    CONNS connections, each handshakes once, then sends SIZE bytes
**         and reads the same SIZE bytes back, again and again; one
**         message = one round trip. Every message has its own pattern.
** idle    opens CONNS connections (at most 128 handshaking at once), each
**         does the handshake and one GET; prints "READY open=N failed=F",
**         holds them for SECONDS (any byte or close from the server is
**         "dropped"), then sends one more GET on each and counts the good
**         answers.
**
** full/resume/echo run WARMUP seconds (not counted), then SECONDS. Output:
** a machine line on stdout
**   RESULT mode=M conns=C dur_s=D ops=N rate=R resumed=K errors=E bad=B
**          cli_cpu=U version=V cipher=S
**   RESULT mode=idle conns=C hold_s=D open=O ok=K dropped=X errors=E
** (ops: connections done, or messages in echo mode; cli_cpu: this
** process's CPU over the measured interval, in cores: near 1.00 means
** the figure is bounded by this client). Exit 0 if something was
** measured, 1 if not, 2 on bad usage.
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_CONNS     100000
#define MAX_SIZE      (1 << 20)
#define IDLE_INFLIGHT 128
#define RBUF          16384
#define EVENT_BATCH   256

enum hs_mode { M_FULL, M_RESUME, M_ECHO, M_IDLE };

/* where a connection is; one word, nothing else is a flag */
enum hs_state {
  ST_CLOSED,    /* no socket */
  ST_HANDSHAKE, /* SSL_connect not done (includes the TCP connect) */
  ST_SEND,      /* request partly written */
  ST_RECV,      /* reading the reply */
  ST_HOLD,      /* idle mode: first exchange done, held */
  ST_DONE,      /* idle mode: finished (final check passed or failed) */
};

struct hs_conn {
  int fd;
  enum hs_state st;
  uint32_t id;
  SSL *ssl;
  SSL_SESSION *sess;    /* resume: the session to offer next */
  uint64_t seq;         /* echo: message number */
  uint64_t txseq;       /* echo: seq + 1 of the message in tx (0: none) */
  size_t off;           /* bytes of the request written */
  size_t got;           /* bytes of the reply read */
  size_t need;          /* bytes the reply has (0: head not complete yet) */
  int final;            /* idle: this exchange is the final check */
  char *buf;            /* the reply (RBUF, or SIZE in echo mode) */
  char *tx;             /* echo: the message */
};

static enum hs_mode mode;
static int port, nconns = 50, size = 64;
static double seconds = 5, warmup = 1;
static const char *servername = "localhost", *cafile, *suites = "TLS_AES_256_GCM_SHA384";
static SSL_CTX *ctx;
static int ep;
static struct hs_conn *conns;
static uint64_t ops, resumed, errors, bad, dropped, okfinal;
static int opened, failed, inflight;
static char version[32] = "NA", cipher[64] = "NA";

static const char REQUEST[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
    + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *msg) {
  fprintf(stderr, "tls_hs: %s\n", msg);
  ERR_print_errors_fp(stderr);
  exit(1);
}

/* ---- connections ------------------------------------------------------ */

/* rst: the exchange went well, close at once with a reset (the session
** stays resumable: OpenSSL spoils the session of a conn freed without a
** shutdown, so the conn is marked as shut down first) */
static void conn_close(struct hs_conn *c, int rst) {
  if (c->ssl) {
    if (rst) SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    if (rst) {
      struct linger lg = { 1, 0 };
      setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    c->fd = -1;
  }
  c->st = ST_CLOSED;
}

static int conn_open(struct hs_conn *c) {
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP,
                            .data.u32 = c->id };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
  c->ssl = SSL_new(ctx);
  if (!c->ssl) die("SSL_new");
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_tlsext_host_name(c->ssl, servername);
  if (cafile) SSL_set1_host(c->ssl, servername);
  if (mode == M_RESUME && c->sess) SSL_set_session(c->ssl, c->sess);
  c->st = ST_HANDSHAKE;
  c->off = c->got = c->need = 0;
  return 0;
}

/* what an SSL call's failure means: 1 wait for an edge, 0 the conn failed */
static int ssl_wait(struct hs_conn *c, int r) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 1;
  ERR_clear_error();
  return 0;
}

/* the request of this exchange and its length */
static const char *request(struct hs_conn *c, size_t *len) {
  if (mode != M_ECHO) { *len = sizeof REQUEST - 1; return REQUEST; }
  *len = (size_t)size;
  if (c->txseq == c->seq + 1) return c->tx;
  c->txseq = c->seq + 1;
  uint64_t tag = ((uint64_t)c->id << 40) ^ c->seq;
  for (int i = 0; i < size; i++)
    c->tx[i] = (char)('a' + (tag >> (i % 8 * 8) & 0xff) % 23 + i % 3);
  *len = (size_t)size;
  return c->tx;
}

/* is the HTTP reply in c->buf complete? sets c->need once the head is in */
static int http_complete(struct hs_conn *c) {
  if (!c->need) {
    char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
    if (!end) {
      if (c->got >= RBUF) c->need = (size_t)-1; /* head too big: bad */
      return c->got >= RBUF;
    }
    size_t head = (size_t)(end - c->buf) + 4, len = 0;
    for (char *p = c->buf; p < end; p++)
      if ((p == c->buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15))
        len = strtoul(p + 15, NULL, 10);
    c->need = head + len;
  }
  return c->got >= c->need;
}

static int reply_ok(struct hs_conn *c) {
  if (mode == M_ECHO) {
    size_t len;
    const char *want = request(c, &len);
    return c->got == len && !memcmp(c->buf, want, len);
  }
  return c->need != (size_t)-1 && c->got == c->need && c->got >= 12
    && !memcmp(c->buf, "HTTP/1.1 200", 12);
}

static void remember_first(struct hs_conn *c) {
  if (strcmp(version, "NA")) return;
  snprintf(version, sizeof version, "%s", SSL_get_version(c->ssl));
  snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(c->ssl));
}

/* one exchange finished well: what comes next for this connection */
static void exchange_done(struct hs_conn *c) {
  ops++;
  if (mode == M_ECHO) {
    c->seq++;
    c->st = ST_SEND;
    c->off = c->got = c->need = 0;
    return;
  }
  if (mode == M_IDLE) {
    if (c->final) { okfinal++; c->st = ST_DONE; return; }
    c->st = ST_HOLD;
    opened++;
    inflight--;
    return;
  }
  if (SSL_session_reused(c->ssl)) resumed++;
  if (mode == M_RESUME) {
    SSL_SESSION *s = SSL_get1_session(c->ssl);
    if (s && SSL_SESSION_is_resumable(s)) {
      if (c->sess) SSL_SESSION_free(c->sess);
      c->sess = s;
    } else if (s) {
      SSL_SESSION_free(s);
    }
  }
  conn_close(c, 1);
}

static void conn_failed(struct hs_conn *c, int is_bad) {
  if (is_bad) bad++; else errors++;
  if (mode == M_IDLE) {
    if (c->st == ST_HOLD) dropped++;
    else if (!c->final) { failed++; inflight--; }
    conn_close(c, 0);
    c->st = ST_DONE;
    return;
  }
  conn_close(c, 0);
}

/* runs the connection's state machine until it must wait for an edge */
static void conn_step(struct hs_conn *c) {
  for (;;) {
    int r;
    switch (c->st) {
    case ST_HANDSHAKE:
      r = SSL_connect(c->ssl);
      if (r != 1) { if (!ssl_wait(c, r)) conn_failed(c, 0); return; }
      remember_first(c);
      c->st = ST_SEND;
      break;
    case ST_SEND: {
      size_t len, n;
      const char *req = request(c, &len);
      r = SSL_write_ex(c->ssl, req + c->off, len - c->off, &n);
      if (r != 1) { if (!ssl_wait(c, r)) conn_failed(c, 0); return; }
      c->off += n;
      if (c->off == len) c->st = ST_RECV;
      break;
    }
    case ST_RECV: {
      size_t cap = mode == M_ECHO ? (size_t)size : RBUF, n;
      if (c->got == cap) { conn_failed(c, 1); return; }
      r = SSL_read_ex(c->ssl, c->buf + c->got, cap - c->got, &n);
      if (r != 1) { if (!ssl_wait(c, r)) conn_failed(c, 0); return; }
      c->got += n;
      int done = mode == M_ECHO ? c->got == (size_t)size : http_complete(c);
      if (!done) break;
      if (!reply_ok(c)) { conn_failed(c, 1); return; }
      exchange_done(c);
      if (c->st == ST_CLOSED || c->st == ST_HOLD || c->st == ST_DONE) return;
      break;
    }
    case ST_HOLD: {
      char b[1];
      size_t n;
      r = SSL_read_ex(c->ssl, b, 1, &n);
      if (r != 1 && ssl_wait(c, r)) return;
      conn_failed(c, 0); /* a byte, or a close, while held */
      return;
    }
    default:
      return;
    }
  }
}

/* ---- the loop ----------------------------------------------------------- */

static void run_events(double until) {
  struct epoll_event evs[EVENT_BATCH];
  for (;;) {
    double left = until - now_s();
    if (left <= 0) return;
    int timeout = left > 0.1 ? 100 : (int)(left * 1000) + 1;
    int n = epoll_wait(ep, evs, EVENT_BATCH, timeout);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) conn_step(&conns[evs[i].data.u32]);
    /* full/resume: closed slots start their next connection */
    if (mode == M_FULL || mode == M_RESUME || mode == M_ECHO)
      for (int k = 0; k < nconns; k++)
        if (conns[k].st == ST_CLOSED) {
          if (conn_open(&conns[k]) < 0) errors++;
          else conn_step(&conns[k]);
        }
  }
}

static void run_load(void) {
  double t0 = now_s();
  run_events(t0 + warmup);
  ops = resumed = errors = bad = 0;
  double c0 = cpu_s(), w0 = now_s();
  run_events(w0 + seconds);
  double wall = now_s() - w0, cpu = cpu_s() - c0;
  const char *m = mode == M_FULL ? "full" : mode == M_RESUME ? "resume" : "echo";
  printf("RESULT mode=%s conns=%d dur_s=%.3f ops=%llu rate=%.0f resumed=%llu errors=%llu "
         "bad=%llu cli_cpu=%.2f version=%s cipher=%s\n", m, nconns, wall,
         (unsigned long long)ops, ops / wall, (unsigned long long)resumed,
         (unsigned long long)errors, (unsigned long long)bad, cpu / wall, version, cipher);
  fprintf(stderr, "tls_hs %s: %.0f/s over %.1f s (%llu resumed, %llu errors, %llu bad), "
          "client %.2f cores, %s %s\n", m, ops / wall, wall, (unsigned long long)resumed,
          (unsigned long long)errors, (unsigned long long)bad, cpu / wall, version, cipher);
  exit(ops ? 0 : 1);
}

static void idle_open_some(int *next) {
  while (*next < nconns && inflight < IDLE_INFLIGHT) {
    struct hs_conn *c = &conns[(*next)++];
    inflight++;
    if (conn_open(c) < 0) { errors++; failed++; inflight--; c->st = ST_DONE; continue; }
    conn_step(c);
  }
}

static void run_idle(void) {
  int next = 0;
  double give_up = now_s() + 60;
  while ((next < nconns || inflight > 0) && now_s() < give_up) {
    idle_open_some(&next);
    struct epoll_event evs[EVENT_BATCH];
    int n = epoll_wait(ep, evs, EVENT_BATCH, 100);
    for (int i = 0; i < n; i++) conn_step(&conns[evs[i].data.u32]);
  }
  printf("READY open=%d failed=%d\n", opened, failed);
  fflush(stdout);
  run_events(now_s() + seconds);
  /* the final check: one more GET on every held connection */
  for (int k = 0; k < nconns; k++) {
    struct hs_conn *c = &conns[k];
    if (c->st != ST_HOLD) continue;
    c->final = 1;
    c->st = ST_SEND;
    c->off = c->got = c->need = 0;
    conn_step(c);
  }
  double end = now_s() + 30;
  for (;;) {
    int busy = 0;
    for (int k = 0; k < nconns; k++) busy += conns[k].st == ST_SEND || conns[k].st == ST_RECV;
    if (!busy || now_s() > end) break;
    struct epoll_event evs[EVENT_BATCH];
    int n = epoll_wait(ep, evs, EVENT_BATCH, 100);
    for (int i = 0; i < n; i++) conn_step(&conns[evs[i].data.u32]);
  }
  printf("RESULT mode=idle conns=%d hold_s=%.1f open=%d ok=%llu dropped=%llu errors=%llu "
         "version=%s cipher=%s\n", nconns, seconds, opened, (unsigned long long)okfinal,
         (unsigned long long)dropped, (unsigned long long)errors, version, cipher);
  exit(opened ? 0 : 1);
}

/* ---- setup --------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: tls_hs -p PORT -m full|resume|idle|echo [-c CONNS] [-d SECONDS]\n"
                  "              [-w WARMUP] [-s SIZE] [-n SERVERNAME] [-a CAFILE] [-C SUITES]\n");
  exit(2);
}

static void parse_args(int argc, char **argv) {
  int o;
  const char *m = NULL;
  while ((o = getopt(argc, argv, "p:m:c:d:w:s:n:a:C:")) != -1) {
    switch (o) {
    case 'p': port = atoi(optarg); break;
    case 'm': m = optarg; break;
    case 'c': nconns = atoi(optarg); break;
    case 'd': seconds = atof(optarg); break;
    case 'w': warmup = atof(optarg); break;
    case 's': size = atoi(optarg); break;
    case 'n': servername = optarg; break;
    case 'a': cafile = optarg; break;
    case 'C': suites = optarg; break;
    default: usage();
    }
  }
  if (!m || port <= 0 || port > 65535 || nconns < 1 || nconns > MAX_CONNS
      || size < 1 || size > MAX_SIZE || !(seconds > 0) || seconds > 3600 || warmup < 0)
    usage();
  if (!strcmp(m, "full")) mode = M_FULL;
  else if (!strcmp(m, "resume")) mode = M_RESUME;
  else if (!strcmp(m, "echo")) mode = M_ECHO;
  else if (!strcmp(m, "idle")) mode = M_IDLE;
  else usage();
}

static void setup_ctx(void) {
  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) die("bad -C cipher suites");
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
  if (cafile) {
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) die("cannot load -a CAFILE");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  /* sessions are kept by hand (resume mode), never by a cache */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  setup_ctx();
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  conns = calloc((size_t)nconns, sizeof *conns);
  if (!conns) die("out of memory");
  for (int k = 0; k < nconns; k++) {
    conns[k].fd = -1;
    conns[k].id = (uint32_t)k;
    conns[k].buf = malloc(mode == M_ECHO ? (size_t)size : RBUF);
    conns[k].tx = mode == M_ECHO ? malloc((size_t)size) : NULL;
    if (!conns[k].buf || (mode == M_ECHO && !conns[k].tx)) die("out of memory");
  }
  if (mode == M_IDLE) run_idle();
  for (int k = 0; k < nconns; k++)
    if (conn_open(&conns[k]) == 0) conn_step(&conns[k]);
  run_load();
  return 0;
}
