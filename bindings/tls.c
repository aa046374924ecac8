/* tls.c — see tls.h: TLS configs, the TLS transport and its BIO, the client
** session cache, conn:starttls and conn:tlsinfo. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../runtime/prof.h"
#include "../runtime/sockio.h"
#include "errstr.h"
#include "netaddr.h"
#include "tlswire.h"

static const char CFGS_KEY[2] = {'s', 'c'}; /* weak tables: server, client */
static const char DEFAULT_KEY = 'd';        /* the default client config */
static const char BOX_KEY = 'b';            /* metatable of config boxes */
static const char CACHE_KEY = 'h';          /* this VM's session cache */
#define SID_CTX "goluarun"
#define MAX_SNI 64
#define CACHE_SLOTS 64
#define CACHE_KEYLEN 300
#define COALESCE (16 * 1024) /* one record: small writes are gathered */

/* ---------- configs ---------- */

typedef struct sni_entry {
  char *name; /* lower case; "*.x" matches one label */
  SSL_CTX *ctx;
} sni_entry;

struct tls_config {
  atomic_int refs;
  bool server;          /* const after build */
  int verify;           /* client: 0/1; server: 0 none, 1 optional, 2 require */
  SSL_CTX *ctx;         /* const after build, like everything below */
  sni_entry sni[MAX_SNI];
  int nsni;
  unsigned char *alpn;  /* wire format, or NULL */
  unsigned alpnlen;
  char *servername;     /* client: the name to send and verify */
  char *trust;          /* client: what a resumed session skips checking
                           (verify, ca, client cert): part of its cache key */
};

void tls_config_ref(tls_config *cfg) { atomic_fetch_add(&cfg->refs, 1); }

void tls_config_unref(tls_config *cfg) {
  if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1) return;
  SSL_CTX_free(cfg->ctx);
  for (int i = 0; i < cfg->nsni; i++) {
    free(cfg->sni[i].name);
    SSL_CTX_free(cfg->sni[i].ctx);
  }
  free(cfg->alpn);
  free(cfg->servername);
  free(cfg->trust);
  free(cfg);
}

/* the last OpenSSL error's reason, or fallback */
static const char *ssl_reason(const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : fallback;
}

static int cfg_raise(lua_State *L, const char *what, const char *path) {
  const char *why = ssl_reason("error");
  ERR_clear_error();
  return luaL_error(L, "tls: %s '%s': %s", what, path, why);
}

static const char *opt_string(lua_State *L, int idx, const char *field) {
  lua_getfield(L, idx, field);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "tls.%s must be a string", field);
    s = lua_tostring(L, -1);
  }
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

static void load_pair(lua_State *L, SSL_CTX *ctx, const char *cert, const char *key) {
  if (!cert || !key) luaL_error(L, "tls: cert and key go together");
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) cfg_raise(L, "cannot load cert", cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
    cfg_raise(L, "cannot load key", key);
  if (SSL_CTX_check_private_key(ctx) != 1) cfg_raise(L, "key does not match cert", key);
}

static void load_ca(lua_State *L, SSL_CTX *ctx, const char *ca, bool server) {
  struct stat st;
  bool dir = stat(ca, &st) == 0 && S_ISDIR(st.st_mode);
  if (SSL_CTX_load_verify_locations(ctx, dir ? NULL : ca, dir ? ca : NULL) != 1)
    cfg_raise(L, "cannot load ca", ca);
  if (server && !dir) {
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
  }
}

static int min_version(lua_State *L, int idx) {
  const char *v = opt_string(L, idx, "min_version");
  if (!v || strcmp(v, "1.2") == 0) return TLS1_2_VERSION;
  if (strcmp(v, "1.3") == 0) return TLS1_3_VERSION;
  return luaL_error(L, "tls.min_version must be \"1.2\" or \"1.3\"");
}

/* alpn_select — the server's first protocol the client also offers */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
  (void)ssl;
  tls_config *cfg = arg;
  return tlswire_alpn_pick(cfg->alpn, cfg->alpnlen, in, inlen, out, outlen)
             ? SSL_TLSEXT_ERR_OK
             : SSL_TLSEXT_ERR_NOACK;
}

/* sni_select — switch to the context of the name the client asked for */
static int sni_select(SSL *ssl, int *al, void *arg) {
  (void)al;
  tls_config *cfg = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  for (int i = 0; i < cfg->nsni; i++) {
    if (tlswire_sni_match(cfg->sni[i].name, name)) {
      SSL_set_SSL_CTX(ssl, cfg->sni[i].ctx);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK; /* other names: the default certificate */
}

static int new_session(SSL *ssl, SSL_SESSION *sess);

/* ctx_new — an SSL_CTX with the table's common fields (not cert/key),
** stored in *slot at once (the config frees it if a later step raises) */
static SSL_CTX *ctx_new(lua_State *L, int idx, tls_config *cfg, SSL_CTX **slot) {
  int minv = min_version(L, idx);
  SSL_CTX *ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
  if (!ctx) luaL_error(L, "tls: %s", ssl_reason("cannot create a context"));
  *slot = ctx;
  SSL_CTX_set_min_proto_version(ctx, minv);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(ctx, 1);
  const char *ciphers = opt_string(L, idx, "ciphers");
  if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) cfg_raise(L, "bad ciphers", ciphers);
  const char *ca = opt_string(L, idx, "ca");
  if (ca) load_ca(L, ctx, ca, cfg->server);
  else if (!cfg->server) SSL_CTX_set_default_verify_paths(ctx);
  if (cfg->server) {
    static const int modes[] = {SSL_VERIFY_NONE, SSL_VERIFY_PEER,
                                SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT};
    SSL_CTX_set_verify(ctx, modes[cfg->verify], NULL);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SID_CTX, sizeof SID_CTX - 1);
    if (cfg->alpn) SSL_CTX_set_alpn_select_cb(ctx, alpn_select, cfg);
  } else {
    SSL_CTX_set_verify(ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    if (cfg->alpn) SSL_CTX_set_alpn_protos(ctx, cfg->alpn, cfg->alpnlen);
  }
  return ctx;
}

static void parse_verify(lua_State *L, int idx, tls_config *cfg) {
  lua_getfield(L, idx, "verify");
  if (cfg->server) {
    const char *v = lua_isnil(L, -1) ? "none" : lua_tostring(L, -1);
    if (v && strcmp(v, "none") == 0) cfg->verify = 0;
    else if (v && strcmp(v, "optional") == 0) cfg->verify = 1;
    else if (v && strcmp(v, "require") == 0) cfg->verify = 2;
    else luaL_error(L, "tls.verify must be \"none\", \"optional\" or \"require\" on a server");
  } else {
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
      luaL_error(L, "tls.verify must be a boolean on a client");
    cfg->verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
}

static void parse_alpn(lua_State *L, int idx, tls_config *cfg) {
  lua_getfield(L, idx, "alpn");
  int list = lua_gettop(L);
  if (lua_isnil(L, list)) return lua_pop(L, 1);
  if (!lua_istable(L, list)) luaL_error(L, "tls.alpn must be a list of strings");
  lua_Integer n = luaL_len(L, list);
  size_t len = 0;
  unsigned char w[1024];
  for (lua_Integer i = 1; i <= n; i++) {
    size_t k = 0; /* clang: unset when p is NULL (then unread) */
    lua_rawgeti(L, list, i);
    const char *p = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &k) : NULL;
    if (!p || k == 0 || k > 255 || len + 1 + k > sizeof w)
      luaL_error(L, "tls.alpn: bad protocol name #%d", (int)i);
    w[len++] = (unsigned char)k;
    memcpy(w + len, p, k);
    len += k;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (len == 0) return;
  if (!(cfg->alpn = malloc(len))) luaL_error(L, ERRSTR_NOMEM);
  memcpy(cfg->alpn, w, len);
  cfg->alpnlen = (unsigned)len;
}

/* parse_sni — a context per name of the map at idx.sni, with that entry's
** cert and key and the table's other fields */
static void parse_sni(lua_State *L, int idx, tls_config *cfg) {
  lua_getfield(L, idx, "sni");
  if (lua_isnil(L, -1)) return lua_pop(L, 1);
  if (!cfg->server) luaL_error(L, "tls.sni is for servers (a client sets tls.servername)");
  luaL_argexpected(L, lua_istable(L, -1), idx, "tls.sni: a map of name -> {cert =, key =}");
  int map = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, map)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
      luaL_error(L, "tls.sni: a map of name -> {cert =, key =}");
    if (cfg->nsni == MAX_SNI) luaL_error(L, "tls.sni: at most %d names", MAX_SNI);
    sni_entry *e = &cfg->sni[cfg->nsni++]; /* counted at once: the box frees a partial config */
    e->name = strdup(lua_tostring(L, -2));
    ctx_new(L, idx, cfg, &e->ctx);
    if (!e->name) luaL_error(L, ERRSTR_NOMEM);
    load_pair(L, e->ctx, opt_string(L, -1, "cert"), opt_string(L, -1, "key"));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (cfg->nsni) SSL_CTX_set_tlsext_servername_callback(cfg->ctx, sni_select);
  if (cfg->nsni) SSL_CTX_set_tlsext_servername_arg(cfg->ctx, cfg);
}

static void cfg_build(lua_State *L, int idx, tls_config *cfg) {
  luaL_checkstack(L, 10, NULL);
  parse_verify(L, idx, cfg);
  parse_alpn(L, idx, cfg);
  ctx_new(L, idx, cfg, &cfg->ctx);
  const char *cert = opt_string(L, idx, "cert"), *key = opt_string(L, idx, "key");
  if (cfg->server && (!cert || !key))
    luaL_error(L, "tls: cert and key are required on the server side");
  if (cert || key) load_pair(L, cfg->ctx, cert, key);
  const char *sn = opt_string(L, idx, "servername");
  if (sn && !cfg->server && !(cfg->servername = strdup(sn))) luaL_error(L, ERRSTR_NOMEM);
  if (!cfg->server) {
    const char *ca = opt_string(L, idx, "ca");
    lua_pushfstring(L, "%d|%s|%s", cfg->verify, ca ? ca : "", cert ? cert : "");
    if (!(cfg->trust = strdup(lua_tostring(L, -1)))) luaL_error(L, ERRSTR_NOMEM);
    lua_pop(L, 1);
  }
  parse_sni(L, idx, cfg);
}

static int box_gc(lua_State *L) {
  tls_config **box = lua_touserdata(L, 1);
  tls_config_unref(*box);
  *box = NULL;
  return 0;
}

/* box_new — a userdata owning a fresh config (freed by GC, even if the
** build raises half-way) */
static tls_config *box_new(lua_State *L, bool server) {
  tls_config **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &BOX_KEY) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &BOX_KEY);
  }
  lua_setmetatable(L, -2);
  tls_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg) luaL_error(L, ERRSTR_NOMEM);
  atomic_init(&cfg->refs, 1);
  cfg->server = server;
  *box = cfg;
  return cfg;
}

/* the weak table of this VM's configs for one side, pushed */
static void push_cache(lua_State *L, bool server) {
  const void *key = &CFGS_KEY[server ? 0 : 1];
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static tls_config *default_client(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DEFAULT_KEY) != LUA_TNIL) {
    tls_config *cfg = *(tls_config **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return cfg;
  }
  lua_pop(L, 1);
  lua_newtable(L); /* an empty config: all defaults */
  tls_config *cfg = box_new(L, false);
  cfg_build(L, lua_gettop(L) - 1, cfg);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DEFAULT_KEY);
  lua_pop(L, 1);
  return cfg;
}

tls_config *tls_config_get(lua_State *L, int idx, bool server) {
  idx = lua_absindex(L, idx);
  if (lua_isboolean(L, idx) && lua_toboolean(L, idx) && !server) return default_client(L);
  luaL_argexpected(L, lua_istable(L, idx), idx, server ? "tls config table" : "tls config table or true");
  push_cache(L, server);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    tls_config *cfg = *(tls_config **)lua_touserdata(L, -1);
    lua_pop(L, 2);
    return cfg;
  }
  lua_pop(L, 1);
  tls_config *cfg = box_new(L, server);
  cfg_build(L, idx, cfg);
  lua_pushvalue(L, idx);
  lua_insert(L, -2);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return cfg;
}

/* ---------- the client session cache (one per VM) ---------- */

typedef struct sess_slot {
  char key[CACHE_KEYLEN];
  SSL_SESSION *sess;
  uint64_t used;
} sess_slot;

typedef struct sess_cache {
  sess_slot slot[CACHE_SLOTS];
  uint64_t clock;
} sess_cache;

static int cache_gc(lua_State *L) {
  sess_cache *sc = lua_touserdata(L, 1);
  for (int i = 0; i < CACHE_SLOTS; i++) {
    SSL_SESSION_free(sc->slot[i].sess);
    sc->slot[i].sess = NULL;
  }
  return 0;
}

static sess_cache *vm_cache(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CACHE_KEY) != LUA_TNIL) {
    sess_cache *sc = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return sc;
  }
  lua_pop(L, 1);
  sess_cache *sc = lua_newuserdatauv(L, sizeof *sc, 0);
  memset(sc, 0, sizeof *sc);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, cache_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CACHE_KEY);
  return sc;
}

static sess_slot *cache_find(sess_cache *sc, const char *key) {
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (sc->slot[i].sess && strcmp(sc->slot[i].key, key) == 0) return &sc->slot[i];
  return NULL;
}

/* cache_put — takes the ref of sess; replaces the key's, a free or the
** least recently stored slot */
static void cache_put(sess_cache *sc, const char *key, SSL_SESSION *sess) {
  sess_slot *s = cache_find(sc, key);
  for (int i = 0; !s && i < CACHE_SLOTS; i++)
    if (!sc->slot[i].sess) s = &sc->slot[i];
  if (!s) {
    s = &sc->slot[0];
    for (int i = 1; i < CACHE_SLOTS; i++)
      if (sc->slot[i].used < s->used) s = &sc->slot[i];
  }
  SSL_SESSION_free(s->sess);
  snprintf(s->key, sizeof s->key, "%s", key);
  s->sess = sess;
  s->used = ++sc->clock;
}

/* ---------- the transport ---------- */

typedef struct tls_state {
  SSL *ssl;
  tls_config *cfg;    /* a ref */
  sess_cache *cache;  /* client: this VM's; NULL on servers */
  char *sesskey;      /* client: address, server name, config */
  char *servername;   /* client: the name sent and verified, or NULL */
  bool fatal;         /* an SSL error happened: no close_notify */
  lua_State *L;       /* for one SSL call: the BIO's */
  glr_pd *pd;
  int syserr;         /* errno the BIO saw in that call */
  bool eagain;        /* the BIO met EAGAIN in that call */
  char *err;          /* the message of the last GLR_FAILED, or NULL (made
                         at the failure: an idle conn keeps no 256 bytes) */
  /* bytes OpenSSL wrote from inside SSL_read (the alert refusing a TLS 1.2
  ** renegotiation) that met EAGAIN: held here and sent before anything
  ** else. Left to OpenSSL, they would wait for the next SSL_write while
  ** the read waits for the peer, and the peer waits for them. */
  char *held;         /* NULL, or HELD_MAX bytes */
  size_t nheld;
  bool in_read;       /* an SSL_read is running: bio_write may hold */
  bool keeps;         /* holds a keep slot: its record buffers stay */
} tls_state;

enum { HELD_MAX = 1024 };

/* Record buffers. SSL_MODE_RELEASE_BUFFERS frees the two 17 KiB record
** buffers whenever they empty, so an idle conn keeps none, at the price of
** a malloc and a free of each per request/response exchange (about 1.5k
** instructions of a 64-byte echo's 18k). A conn whose read parks for the
** next message (it is exchanging messages) takes one of KEEP_SLOTS
** process-wide slots if one is free and keeps its buffers from then on,
** until it closes: at most KEEP_SLOTS * 34 KiB stay allocated. Any thread
** (a conn may move to another VM): the count is atomic. */
enum { KEEP_SLOTS = 64 };
static atomic_int kept_slots;

static void keep_buffers(tls_state *t) {
  if (t->keeps || atomic_load_explicit(&kept_slots, memory_order_relaxed) >= KEEP_SLOTS) return;
  if (atomic_fetch_add(&kept_slots, 1) >= KEEP_SLOTS) {
    atomic_fetch_sub(&kept_slots, 1);
    return;
  }
  t->keeps = true;
  SSL_clear_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
}

static void keep_release(tls_state *t) {
  if (t->keeps) atomic_fetch_sub(&kept_slots, 1);
  t->keeps = false;
}

static int new_session(SSL *ssl, SSL_SESSION *sess) {
  tls_state *t = SSL_get_app_data(ssl);
  if (!t || !t->cache || !t->sesskey) return 0;
  cache_put(t->cache, t->sesskey, sess);
  return 1; /* we keep the reference */
}

static int bio_read(BIO *b, char *buf, int n) {
  tls_state *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t r = glr_read(t->L, t->pd, buf, (size_t)n);
  if (r >= 0) return (int)r;
  if (r == -EAGAIN) BIO_set_retry_read(b), t->eagain = true;
  else t->syserr = (int)-r;
  return -1;
}

/* hold — keep n bytes an SSL_read wrote that met EAGAIN: n, or -1 when
** this is not a read or they do not fit */
static int hold(tls_state *t, const char *buf, int n) {
  if (!t->in_read || (size_t)n > HELD_MAX - t->nheld) return -1;
  if (!t->held && !(t->held = malloc(HELD_MAX))) return -1;
  memcpy(t->held + t->nheld, buf, (size_t)n);
  t->nheld += (size_t)n;
  return n;
}

static int bio_write(BIO *b, const char *buf, int n) {
  tls_state *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  struct iovec iov = {(void *)buf, (size_t)n};
  ssize_t r = t->nheld ? -EAGAIN : glr_writev(t->L, t->pd, &iov, 1);
  if (r >= 0) return (int)r;
  if (r == -EAGAIN && hold(t, buf, n) == n) return n;
  if (r == -EAGAIN) BIO_set_retry_write(b), t->eagain = true;
  else t->syserr = (int)-r;
  return -1;
}

/* send_held — send what hold kept: 0 once it is all out, GLR_WANT_WRITE,
** or -errno */
static int send_held(tls_state *t, lua_State *L, glr_pd *pd) {
  while (t->nheld) {
    struct iovec iov = {t->held, t->nheld};
    ssize_t r = glr_writev(L, pd, &iov, 1);
    if (r == -EAGAIN) return GLR_WANT_WRITE;
    if (r < 0) return (int)r;
    t->nheld -= (size_t)r;
    memmove(t->held, t->held + r, t->nheld);
  }
  free(t->held);
  t->held = NULL;
  return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

/* the BIO method: created once, immutable, shared by every VM */
static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_init(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "goluarun conn");
  if (!m) return;
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

static void set_err(tls_state *t, const char *prefix, const char *detail) {
  char m[256];
  snprintf(m, sizeof m, "%s: %s", prefix, detail);
  free(t->err);
  t->err = strdup(m); /* NULL (out of memory): conn.c says "transport failed" */
}

/* verify_failed — the handshake failed on a certificate check */
static bool verify_failed(tls_state *t) {
  long v = SSL_get_verify_result(t->ssl);
  if (v == X509_V_OK || SSL_get_verify_mode(t->ssl) == SSL_VERIFY_NONE) return false;
  set_err(t, ERRSTR_TLS_VERIFY, X509_verify_cert_error_string(v));
  return true;
}

/* want — the call stopped on the BIO's EAGAIN: SSL_get_error's
** WANT_READ / WANT_WRITE, told without the error queue */
static int want(tls_state *t) {
  if (!t->eagain) return 0;
  if (SSL_want_read(t->ssl)) return GLR_WANT_READ;
  return SSL_want_write(t->ssl) ? GLR_WANT_WRITE : 0;
}

/* failed — the transport's code for a call that failed for good (EOF,
** alert, system error, bad certificate); its message in t->err */
static int failed(tls_state *t, int r, bool hs) {
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return GLR_WANT_READ; /* not from our BIO: none today */
  if (e == SSL_ERROR_WANT_WRITE) return GLR_WANT_WRITE;
  if (e != SSL_ERROR_ZERO_RETURN) t->fatal = true;
  if (hs) {
    if (e == SSL_ERROR_SSL && verify_failed(t)) return GLR_FAILED;
    const char *d = t->syserr ? errstr_of(t->syserr) : e == SSL_ERROR_SSL ? ssl_reason("error")
                                                                            : "unexpected eof";
    set_err(t, ERRSTR_TLS_HANDSHAKE, d);
    return GLR_FAILED;
  }
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  if (t->syserr) return -t->syserr;
  if (e == SSL_ERROR_SYSCALL) return 0; /* EOF without close_notify */
  set_err(t, ERRSTR_TLS, ssl_reason("error"));
  return GLR_FAILED;
}

/* result — map an SSL call's return r (<= 0) into the transport's codes.
** Anything but a WANT leaves the thread's error queue empty again, so the
** next SSL call (maybe another goroutine's) finds it empty. */
static int result(tls_state *t, int r, bool hs) {
  int w = want(t);
  if (w) return w;
  w = failed(t, r, hs);
  ERR_clear_error();
  return w;
}

/* call_begin — bind the BIO to this call. The error queue is empty here
** (result clears it after every failure) unless some other code left an
** OpenSSL error on this thread: handshakes and shutdowns clear it first (a
** stale error would fail them), reads and writes do not (838 instructions
** each; want() never reads the queue, so a stale error can at worst change
** the message of a failure that happens anyway). */
static void call_begin(tls_state *t, lua_State *L, glr_pd *pd) {
  t->L = L;
  t->pd = pd;
  t->syserr = 0;
  t->eagain = false;
}

/* awaiting_hello — a server's handshake starts only once the client has
** sent something: before that, OpenSSL would set up its buffers for nothing
** (a flood of silent connections cost about 46 KiB each; nginx peeks too) */
static bool awaiting_hello(tls_state *t, glr_pd *pd) {
  if (!SSL_is_server(t->ssl) || !SSL_in_before(t->ssl)) return false;
  char b;
  ssize_t r = recv(glr_pd_fd(pd), &b, 1, MSG_PEEK);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int tp_handshake(lua_State *L, void *data, glr_pd *pd) {
  tls_state *t = data;
  if (awaiting_hello(t, pd)) return GLR_WANT_READ;
  call_begin(t, L, pd);
  ERR_clear_error();
  prof_c_enter(vm_p(L), "OpenSSL");
  int r = SSL_do_handshake(t->ssl);
  prof_c_leave(vm_p(L));
  return r == 1 ? 0 : result(t, r, true);
}

/* nothing_to_read — SSL_read could only end in WANT_READ: OpenSSL holds no
** byte (plain or raw), owes no write, and the socket has nothing either
** (sockio.c's drained read: the next byte brings a readiness event, which
** the park then finds). Saves the second SSL_read of every exchange. */
static bool nothing_to_read(tls_state *t, glr_pd *pd) {
  return sock_read_would_block((pollDesc *)pd) && !SSL_has_pending(t->ssl) &&
         !SSL_want_write(t->ssl);
}

/* tp_read — held bytes go out first, and a read that leaves some behind
** waits for writability: the peer may be waiting for them */
static ssize_t tp_read(lua_State *L, void *data, glr_pd *pd, void *buf, size_t n) {
  tls_state *t = data;
  int h = send_held(t, L, pd);
  if (h != 0) return h;
  if (nothing_to_read(t, pd)) {
    keep_buffers(t);
    return GLR_WANT_READ;
  }
  call_begin(t, L, pd);
  prof_c_enter(vm_p(L), "OpenSSL");
  t->in_read = true;
  int r = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
  t->in_read = false;
  prof_c_leave(vm_p(L));
  if (r > 0) return r;
  r = result(t, r, false);
  h = r == GLR_WANT_READ ? send_held(t, L, pd) : 0;
  return h != 0 ? h : r;
}

/* gather — the bytes to hand SSL_write: the first buffer, or several small
** ones copied together (one record instead of several) */
static const void *gather(lua_State *L, struct iovec *iov, int cnt, size_t *n) {
  int i = 0;
  while (i < cnt - 1 && iov[i].iov_len == 0) i++;
  if (i == cnt - 1 || iov[i].iov_len >= COALESCE) {
    *n = iov[i].iov_len > INT_MAX ? INT_MAX : iov[i].iov_len;
    return iov[i].iov_base;
  }
  char *b = glr_scratch(L, COALESCE);
  size_t len = 0;
  for (; i < cnt && len < COALESCE; i++) {
    size_t k = iov[i].iov_len < COALESCE - len ? iov[i].iov_len : COALESCE - len;
    memcpy(b + len, iov[i].iov_base, k);
    len += k;
  }
  *n = len;
  return b;
}

static ssize_t tp_writev(lua_State *L, void *data, glr_pd *pd, struct iovec *iov, int cnt) {
  tls_state *t = data;
  int h = send_held(t, L, pd);
  if (h != 0) return h;
  size_t n;
  const void *p = gather(L, iov, cnt, &n);
  call_begin(t, L, pd);
  prof_c_enter(vm_p(L), "OpenSSL");
  int r = SSL_write(t->ssl, p, (int)n);
  prof_c_leave(vm_p(L));
  if (r > 0) return r;
  r = result(t, r, false);
  return r == 0 ? -EPIPE : r;
}

static int tp_closewrite(lua_State *L, void *data, glr_pd *pd) {
  tls_state *t = data;
  int h = send_held(t, L, pd);
  if (h != 0) return h;
  call_begin(t, L, pd);
  ERR_clear_error();
  int r = SSL_shutdown(t->ssl);
  if (r >= 0) return 0;
  r = result(t, r, false);
  return r == 0 ? 0 : r;
}

static const char *tp_errmsg(void *data) { return ((tls_state *)data)->err; }

static void tp_moved(lua_State *L, void *data, glr_pd *pd) {
  (void)pd;
  tls_state *t = data;
  if (t->cache) t->cache = vm_cache(L);
}

static void state_free(tls_state *t) {
  keep_release(t);
  SSL_free(t->ssl);
  free(t->held);
  tls_config_unref(t->cfg);
  free(t->sesskey);
  free(t->servername);
  free(t->err);
  free(t);
}

/* tp_close — a best-effort close_notify (nothing waits), then free */
static void tp_close(lua_State *L, void *data, glr_pd *pd) {
  tls_state *t = data;
  t->cache = NULL;
  if (!t->fatal && SSL_is_init_finished(t->ssl) &&
      !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
    call_begin(t, L, pd);
    SSL_shutdown(t->ssl);
    ERR_clear_error();
  }
  state_free(t);
}

static const glr_transport tls_transport = {tp_read,    tp_writev, tp_closewrite, tp_handshake,
                                            tp_errmsg,  tp_moved,  tp_close};

/* state_new — a TLS state for cfg (its own ref), or NULL (out of memory) */
static tls_state *state_new(tls_config *cfg) {
  pthread_once(&bio_once, bio_init);
  tls_state *t = calloc(1, sizeof *t);
  if (!t || !bio_method) return free(t), NULL;
  t->ssl = SSL_new(cfg->ctx);
  BIO *bio = t->ssl ? BIO_new(bio_method) : NULL;
  if (!bio) {
    SSL_free(t->ssl);
    free(t);
    return NULL;
  }
  BIO_set_data(bio, t);
  SSL_set_bio(t->ssl, bio, bio);
  SSL_set_app_data(t->ssl, t);
  t->cfg = cfg;
  tls_config_ref(cfg);
  return t;
}

int tls_accept(lua_State *L, conn *c, tls_config *cfg) {
  (void)L;
  tls_state *t = state_new(cfg);
  if (!t) return -ENOMEM;
  SSL_set_accept_state(t->ssl);
  int r = conn_settransport(c, &tls_transport, t);
  if (r < 0) state_free(t);
  return r;
}

static bool is_ip(const char *s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* client_setup — SNI, the name or IP to verify, the session to resume */
static int client_setup(lua_State *L, tls_state *t, const char *addr, const char *host) {
  const char *name = t->cfg->servername ? t->cfg->servername : host;
  SSL_set_connect_state(t->ssl);
  if (name && !(t->servername = strdup(name))) return -ENOMEM;
  if (name && !is_ip(name)) SSL_set_tlsext_host_name(t->ssl, name);
  X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
  if (name && t->cfg->verify) {
    int ok = is_ip(name) ? X509_VERIFY_PARAM_set1_ip_asc(vp, name)
                         : X509_VERIFY_PARAM_set1_host(vp, name, 0);
    if (ok != 1) return -EINVAL;
  }
  char key[CACHE_KEYLEN];
  snprintf(key, sizeof key, "%s|%s|%s", addr, name ? name : "", t->cfg->trust);
  if (!(t->sesskey = strdup(key))) return -ENOMEM;
  t->cache = vm_cache(L);
  sess_slot *s = cache_find(t->cache, key);
  if (s && SSL_SESSION_is_resumable(s->sess)) SSL_set_session(t->ssl, s->sess);
  return 0;
}

int tls_dial(lua_State *L, int cidx, tls_config *cfg, const char *addr, const char *host,
             int64_t deadline) {
  conn *c = lua_touserdata(L, cidx);
  if (!host && cfg->verify && !cfg->servername) {
    conn_close(L, c);
    return luaL_error(L, "net.dial: tls over a unix socket needs tls.servername (or verify = false)");
  }
  tls_state *t = state_new(cfg);
  int r = t ? client_setup(L, t, addr, host) : -ENOMEM;
  if (r == 0) r = conn_settransport(c, &tls_transport, t);
  if (r < 0) {
    if (t) state_free(t);
    conn_close(L, c);
    return conn_push_fail(L, errstr_of(-r));
  }
  lua_pushvalue(L, cidx);
  lua_replace(L, 1);
  lua_pushnil(L);
  lua_replace(L, 2);
  lua_settop(L, 2);
  lua_pushinteger(L, (lua_Integer)deadline);
  return conn_op_run(L, &conn_hs_op, 0);
}

/* ---------- conn:starttls(T), conn:tlsinfo() ---------- */

/* the peer's address (without port) for a client's default name */
static const char *peer_host(lua_State *L, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char buf[INET6_ADDRSTRLEN];
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return NULL;
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, sizeof buf);
  else return NULL;
  return lua_pushstring(L, buf);
}

static int m_starttls(lua_State *L) {
  conn_stream *cs = conn_stream_check(L, 1);
  conn *c = &cs->c;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "server");
  bool server = lua_toboolean(L, -1);
  lua_pop(L, 1);
  tls_config *cfg = tls_config_get(L, 2, server);
  if (c->status != CONN_OPEN) return conn_push_fail(L, ERRSTR_CLOSED);
  if (c->nops > 0) return luaL_error(L, "starttls: the connection is in use by another goroutine");
  if (conn_buffered(cs) > 0)
    return conn_push_fail(L, ERRSTR_TLS_HANDSHAKE ": plaintext bytes arrived before starttls");
  if (server) {
    if (tls_accept(L, c, cfg) < 0) return conn_push_fail(L, ERRSTR_NOMEM);
    lua_pushnil(L);
    lua_replace(L, 2);
    return conn_op_run(L, &conn_hs_op, 0);
  }
  const char *host = peer_host(L, c->fd); /* kept on the stack */
  tls_state *t = state_new(cfg);
  int r = t ? client_setup(L, t, host ? host : "", host) : -ENOMEM;
  if (r == 0) r = conn_settransport(c, &tls_transport, t);
  if (r < 0) {
    if (t) state_free(t);
    return conn_push_fail(L, errstr_of(-r));
  }
  lua_settop(L, 1);
  lua_pushnil(L);
  return conn_op_run(L, &conn_hs_op, 0);
}

static void push_name(lua_State *L, X509_NAME *n) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return lua_pushnil(L);
  X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
  char *p;
  long len = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)len);
  BIO_free(b);
}

static void push_peer(lua_State *L, SSL *ssl) {
  X509 *x = SSL_get0_peer_certificate(ssl);
  if (!x) return;
  lua_createtable(L, 0, 3);
  push_name(L, X509_get_subject_name(x));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(x));
  lua_setfield(L, -2, "issuer");
  lua_pushboolean(L, SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE &&
                         SSL_get_verify_result(ssl) == X509_V_OK);
  lua_setfield(L, -2, "verified");
  lua_setfield(L, -2, "peer");
}

static int m_tlsinfo(lua_State *L) {
  conn *c = &conn_stream_check(L, 1)->c;
  if (c->status != CONN_OPEN || c->tp != &tls_transport) return lua_pushnil(L), 1;
  tls_state *t = c->tpdata;
  SSL *ssl = t->ssl;
  lua_createtable(L, 0, 7);
  lua_pushstring(L, SSL_get_version(ssl));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, SSL_get_cipher_name(ssl));
  lua_setfield(L, -2, "cipher");
  const unsigned char *alpn;
  unsigned alen;
  SSL_get0_alpn_selected(ssl, &alpn, &alen);
  if (alen) lua_pushlstring(L, (const char *)alpn, alen), lua_setfield(L, -2, "alpn");
  const char *sn = t->cfg->server ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)
                                  : t->servername;
  if (sn) lua_pushstring(L, sn), lua_setfield(L, -2, "servername");
  lua_pushboolean(L, SSL_session_reused(ssl));
  lua_setfield(L, -2, "resumed");
  push_peer(L, ssl);
  return 1;
}

void tls_open(lua_State *L) {
  conn_stream_method(L, "starttls", m_starttls);
  conn_stream_method(L, "tlsinfo", m_tlsinfo);
}
