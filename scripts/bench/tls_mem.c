/*
** tls_mem.c — what OpenSSL keeps per idle server TLS connection: a counting
** allocator (CRYPTO_set_mem_functions) around N server SSL objects set up
** as goluarun's tls.c sets them up (TLS 1.3, SSL_MODE_RELEASE_BUFFERS,
** read-ahead, the same certificate), each driven through memory BIOs
** against a client: handshake, one 78-byte request, one 100-byte answer,
** the client's answer read (so the server's NewSessionTicket went out).
**
**   tls_mem CERT KEY [N]       (N default 200)
**
** Prints the live bytes per server connection at each stage (malloc'd
** sizes as requested, plus glibc's 16-byte chunk overhead counted apart)
** and, for the idle stage, the allocation sites (OpenSSL's file:line)
** holding them, largest first. Built by scripts/bench/tls.sh's idle
** section only on request: cc -O2 tls_mem.c -lssl -lcrypto.
*/
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* ---------- the counting allocator: a header before each block ---------- */

typedef struct hdr {
  struct hdr *prev, *next; /* the live counted blocks */
  size_t size;
  const char *file;
  int line;
  int tag; /* 1: counted (allocated while counting is on) */
} hdr;

static long long live_bytes, live_blocks;
static int counting;
static hdr live = {&live, &live, 0, "", 0, 0};

#define MAX_SITES 512
typedef struct site {
  const char *file;
  int line;
  long long bytes, blocks;
} site;
static site sites[MAX_SITES];
static int nsites;

static void *c_malloc(size_t n, const char *file, int line) {
  hdr *h = malloc(sizeof *h + n);
  if (!h) return NULL;
  h->size = n;
  h->file = file;
  h->line = line;
  h->tag = counting;
  if (counting) {
    live_bytes += (long long)n, live_blocks++;
    h->next = &live, h->prev = live.prev;
    live.prev->next = h, live.prev = h;
  }
  return h + 1;
}

static void c_free(void *p, const char *file, int line) {
  (void)file, (void)line;
  if (!p) return;
  hdr *h = (hdr *)p - 1;
  if (h->tag) {
    live_bytes -= (long long)h->size, live_blocks--;
    h->prev->next = h->next, h->next->prev = h->prev;
  }
  free(h);
}

static void *c_realloc(void *p, size_t n, const char *file, int line) {
  if (!p) return c_malloc(n, file, line);
  hdr *h = (hdr *)p - 1;
  void *q = c_malloc(n, file, line);
  if (!q) return NULL;
  memcpy(q, p, h->size < n ? h->size : n);
  c_free(p, file, line);
  return q;
}

/* ---------- driving a pair through memory BIOs ---------- */

static void die(const char *what) {
  fprintf(stderr, "tls_mem: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

typedef struct pair {
  SSL *srv, *cli;
} pair;

/* move — bytes waiting in one side's write BIO into the other's read BIO */
static void move(SSL *from, SSL *to) {
  char buf[16384];
  BIO *w = SSL_get_wbio(from), *r = SSL_get_rbio(to);
  int n;
  while ((n = BIO_read(w, buf, sizeof buf)) > 0)
    if (BIO_write(r, buf, n) != n) die("BIO_write");
}

/* only the server's own calls are counted: not the client's, not the
** memory BIOs' buffers (goluarun's BIO has none) */
static void pump(pair *p) {
  counting = 0;
  for (int i = 0; i < 20; i++) {
    move(p->cli, p->srv);
    move(p->srv, p->cli);
  }
}

static int srv_call(int (*f)(SSL *), SSL *s) {
  counting = 1;
  int r = f(s);
  counting = 0;
  return r;
}

static void handshake(pair *p) {
  for (int i = 0; i < 20; i++) {
    int a = SSL_do_handshake(p->cli), b = srv_call(SSL_do_handshake, p->srv);
    pump(p);
    if (a == 1 && b == 1) return;
  }
  die("handshake did not finish");
}

static char req[78], ans[100], buf[256];
static int srv_read(SSL *s) { return SSL_read(s, buf, sizeof buf); }
static int srv_write(SSL *s) { return SSL_write(s, ans, sizeof ans); }

static void exchange(pair *p) {
  if (SSL_write(p->cli, req, sizeof req) != (int)sizeof req) die("client write");
  pump(p);
  if (srv_call(srv_read, p->srv) != (int)sizeof req) die("server read");
  if (srv_call(srv_read, p->srv) > 0) die("server read: more");
  ERR_clear_error();
  if (srv_call(srv_write, p->srv) != (int)sizeof ans) die("server write");
  pump(p);
  if (SSL_read(p->cli, buf, sizeof buf) != (int)sizeof ans) die("client read");
}

/* ---------- the sites of the live blocks ---------- */

static void add_site(hdr *h) {
  for (int i = 0; i < nsites; i++) {
    if (sites[i].line == h->line && strcmp(sites[i].file, h->file) == 0) {
      sites[i].bytes += (long long)h->size;
      sites[i].blocks++;
      return;
    }
  }
  if (nsites == MAX_SITES) return;
  sites[nsites++] = (site){h->file, h->line, (long long)h->size, 1};
}

static int by_bytes(const void *a, const void *b) {
  long long x = ((const site *)a)->bytes, y = ((const site *)b)->bytes;
  return x < y ? 1 : x > y ? -1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tls_mem CERT KEY [N]\n");
    return 2;
  }
  int n = argc > 3 ? atoi(argv[3]) : 200;
  if (n < 1 || n > 100000) return 2;
  if (!CRYPTO_set_mem_functions(c_malloc, c_realloc, c_free)) die("set_mem_functions");
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
  if (!sctx || !cctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
  SSL_CTX_set_options(sctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(sctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(sctx, 1);
  SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"goluarun", 8);
  if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1)
    die("cert/key");
  SSL_CTX_set_ciphersuites(cctx, "TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);

  pair *ps = calloc((size_t)n, sizeof *ps);
  if (!ps) die("calloc");
  /* client objects are made outside the count */
  for (int i = 0; i < n; i++) {
    ps[i].cli = SSL_new(cctx);
    SSL_set_bio(ps[i].cli, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(ps[i].cli);
  }
  memset(req, 'q', sizeof req);
  memset(ans, 'a', sizeof ans);
  long long base = live_bytes;
  const char *stage[] = {"SSL_new + BIOs", "after handshake", "after one exchange (idle)",
                         "after SSL_free_buffers"};
  long long at[4];
  counting = 1;
  for (int i = 0; i < n; i++) {
    counting = 1;
    ps[i].srv = SSL_new(sctx);
    counting = 0;
    SSL_set_bio(ps[i].srv, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_accept_state(ps[i].srv);
  }
  at[0] = live_bytes;
  for (int i = 0; i < n; i++) handshake(&ps[i]);
  at[1] = live_bytes;
  for (int i = 0; i < n; i++) exchange(&ps[i]);
  at[2] = live_bytes;
  long long blocks_idle = live_blocks;
  for (hdr *h = live.next; h != &live; h = h->next) add_site(h);
  for (int i = 0; i < n; i++) SSL_free_buffers(ps[i].srv);
  at[3] = live_bytes;
  printf("OpenSSL %s, %d server connections (TLS 1.3, %s)\n", OpenSSL_version(OPENSSL_VERSION), n,
         SSL_get_cipher_name(ps[0].srv));
  printf("%-28s %10s\n", "stage", "B/conn");
  for (int s = 0; s < 4; s++) printf("%-28s %10.0f\n", stage[s], (double)(at[s] - base) / n);
  printf("idle: %.1f blocks/conn, glibc chunk headers ~%.0f B/conn more\n",
         (double)blocks_idle / n, 16.0 * (double)blocks_idle / n);
  qsort(sites, (size_t)nsites, sizeof *sites, by_bytes);
  printf("\nidle, by allocation site (B/conn, blocks/conn):\n");
  for (int i = 0; i < nsites && sites[i].bytes >= n; i++)
    printf("  %7.0f %5.1f  %s:%d\n", (double)sites[i].bytes / n, (double)sites[i].blocks / n,
           sites[i].file, sites[i].line);
  return 0;
}
