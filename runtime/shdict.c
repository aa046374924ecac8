/* shdict.c — shared dictionaries; see shdict.h. */
#include "shdict.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define INITIAL_BUCKETS 16
#define SWEEP_STEP 4 /* buckets the incremental sweep visits per write */

typedef struct entry {
  struct entry *next;
  uint64_t hash;
  int64_t expire; /* absolute mono ns, 0 = none */
  int type;       /* enum shd_type, never SHD_NIL */
  union {
    bool b;
    int64_t i;
    double f;
    struct {
      char *p; /* owned, malloc'd */
      size_t len;
    } s;
  } u;
  size_t klen;
  char key[];
} entry;

struct shdict {
  pthread_mutex_t lock;
  entry **buckets; /* mask + 1 chains */
  size_t mask;
  size_t n;        /* entries, expired ones not yet freed included */
  size_t nttl;     /* entries with an expiry */
  size_t sweep_at; /* next bucket of the incremental sweep */
  shdict *reg_next;
  size_t namelen;
  char name[];
};

/* ---------- hashing: SipHash-1-3 with a per-process random key ---------- */

static uint64_t sip_key[2];
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_seed(void) {
  if (getrandom(sip_key, sizeof sip_key, GRND_NONBLOCK) != (ssize_t)sizeof sip_key) {
    sip_key[0] = (uint64_t)mono_now() * UINT64_C(0x9e3779b97f4a7c15);
    sip_key[1] = (uint64_t)(uintptr_t)&sip_key ^ sip_key[0] >> 17;
  }
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                              \
  do {                                                                        \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                 \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                    \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                    \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                 \
  } while (0)

static uint64_t hash_key(const char *k, size_t len) {
  const unsigned char *s = (const unsigned char *)k;
  uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ sip_key[0];
  uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ sip_key[1];
  uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ sip_key[0];
  uint64_t v3 = UINT64_C(0x7465646279746573) ^ sip_key[1];
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t m;
    memcpy(&m, s + i, 8);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t j = 0; i + j < len; j++) b |= (uint64_t)s[i + j] << (8 * j);
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* ---------- entries (dict locked) ---------- */

static bool is_expired(const entry *e, int64_t *now) {
  if (!e->expire) return false;
  if (!*now) *now = mono_now();
  return e->expire <= *now;
}

static void free_entry(entry *e) {
  if (e->type == SHD_STR) free(e->u.s.p);
  free(e);
}

static void unlink_free(shdict *d, entry **slot) {
  entry *e = *slot;
  *slot = e->next;
  d->n--;
  if (e->expire) d->nttl--;
  free_entry(e);
}

/* lookup — the link pointing at k's live entry, or NULL (an expired entry
** met on the way is freed). */
static entry **lookup(shdict *d, uint64_t h, const char *k, size_t klen, int64_t *now) {
  entry **slot = &d->buckets[h & d->mask];
  for (; *slot; slot = &(*slot)->next) {
    entry *e = *slot;
    if (e->hash != h || e->klen != klen || memcmp(e->key, k, klen) != 0) continue;
    if (!is_expired(e, now)) return slot;
    unlink_free(d, slot);
    return NULL;
  }
  return NULL;
}

static void sweep_bucket(shdict *d, size_t b, int64_t *now) {
  entry **slot = &d->buckets[b];
  while (*slot) {
    if (is_expired(*slot, now))
      unlink_free(d, slot);
    else
      slot = &(*slot)->next;
  }
}

/* sweep_some — the incremental sweep, a few buckets per write */
static void sweep_some(shdict *d, int64_t *now) {
  for (int i = 0; i < SWEEP_STEP && d->nttl; i++) {
    sweep_bucket(d, d->sweep_at, now);
    d->sweep_at = (d->sweep_at + 1) & d->mask;
  }
}

static void sweep_all(shdict *d, int64_t *now) {
  for (size_t b = 0; b <= d->mask && d->nttl; b++) sweep_bucket(d, b, now);
}

/* grow — doubles the table when it would pass one entry per bucket; on
** allocation failure the chains just get longer. */
static void grow(shdict *d, int64_t *now) {
  if (d->n < d->mask + 1) return;
  sweep_all(d, now);
  if (d->n < d->mask + 1) return;
  size_t nb = (d->mask + 1) * 2;
  entry **nbk = calloc(nb, sizeof *nbk);
  if (!nbk) return;
  for (size_t b = 0; b <= d->mask; b++) {
    entry *e = d->buckets[b];
    while (e) {
      entry *next = e->next;
      e->next = nbk[e->hash & (nb - 1)];
      nbk[e->hash & (nb - 1)] = e;
      e = next;
    }
  }
  free(d->buckets);
  d->buckets = nbk;
  d->mask = nb - 1;
  d->sweep_at &= d->mask;
}

static entry *new_entry(uint64_t h, const char *k, size_t klen) {
  entry *e = malloc(sizeof *e + klen);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  e->hash = h;
  e->klen = klen;
  memcpy(e->key, k, klen);
  return e;
}

static void insert(shdict *d, entry *e, int64_t *now) {
  grow(d, now);
  entry **b = &d->buckets[e->hash & d->mask];
  e->next = *b;
  *b = e;
  d->n++;
  if (e->expire) d->nttl++;
}

/* store_value — v (not nil) into e; -ENOMEM leaves e unchanged. A string
** as long as the one it replaces is copied over it (no malloc, no free). */
static int store_value(entry *e, const shd_value *v) {
  char *str = NULL;
  if (v->type == SHD_STR && e->type == SHD_STR && e->u.s.len == v->u.s.len) {
    memcpy(e->u.s.p, v->u.s.p, v->u.s.len);
    return 0;
  }
  if (v->type == SHD_STR) {
    str = malloc(v->u.s.len ? v->u.s.len : 1);
    if (!str) return -ENOMEM;
    memcpy(str, v->u.s.p, v->u.s.len);
  }
  if (e->type == SHD_STR) free(e->u.s.p);
  e->type = v->type;
  switch (v->type) {
  case SHD_BOOL: e->u.b = v->u.b; break;
  case SHD_INT: e->u.i = v->u.i; break;
  case SHD_FLOAT: e->u.f = v->u.f; break;
  default:
    e->u.s.p = str;
    e->u.s.len = v->u.s.len;
  }
  return 0;
}

/* set_expire — for an entry in the table (keeps nttl right) */
static void set_expire(shdict *d, entry *e, int64_t expire) {
  d->nttl += (expire != 0) - (e->expire != 0);
  e->expire = expire;
}

static int copy_out(const entry *e, shd_value *out, char *buf, size_t cap) {
  out->type = e->type;
  switch (e->type) {
  case SHD_BOOL: out->u.b = e->u.b; return 0;
  case SHD_INT: out->u.i = e->u.i; return 0;
  case SHD_FLOAT: out->u.f = e->u.f; return 0;
  default:
    out->u.s.len = e->u.s.len;
    if (e->u.s.len > cap) return -ENOBUFS;
    memcpy(buf, e->u.s.p, e->u.s.len);
    out->u.s.p = buf;
    return 0;
  }
}

/* ---------- one dict ---------- */

shdict *shdict_new(const char *name, size_t len) {
  pthread_once(&sip_once, sip_seed);
  shdict *d = x_calloc(1, sizeof *d + len + 1);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP); /* short sections */
#endif
  pthread_mutex_init(&d->lock, &a);
  pthread_mutexattr_destroy(&a);
  d->buckets = x_calloc(INITIAL_BUCKETS, sizeof *d->buckets);
  d->mask = INITIAL_BUCKETS - 1;
  d->namelen = len;
  memcpy(d->name, name, len);
  return d;
}

void shdict_free(shdict *d) {
  for (size_t b = 0; b <= d->mask; b++) {
    entry *e = d->buckets[b];
    while (e) {
      entry *next = e->next;
      free_entry(e);
      e = next;
    }
  }
  free(d->buckets);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

const char *shdict_name(const shdict *d, size_t *len) {
  if (len) *len = d->namelen;
  return d->name;
}

int shdict_get(shdict *d, const char *k, size_t klen, shd_value *out, char *buf, size_t cap) {
  uint64_t h = hash_key(k, klen);
  int64_t now = 0;
  pthread_mutex_lock(&d->lock);
  entry **slot = lookup(d, h, k, klen, &now);
  int rc = slot ? copy_out(*slot, out, buf, cap) : -ENOENT;
  pthread_mutex_unlock(&d->lock);
  return rc;
}

/* put — set (onlyadd false) or add */
static int put(shdict *d, const char *k, size_t klen, const shd_value *v, int64_t expire,
               bool onlyadd) {
  uint64_t h = hash_key(k, klen);
  bool del = !v || v->type == SHD_NIL;
  int64_t now = 0;
  int rc = 0;
  pthread_mutex_lock(&d->lock);
  sweep_some(d, &now);
  entry **slot = lookup(d, h, k, klen, &now);
  if (slot && onlyadd) {
    rc = -EEXIST;
  } else if (del) {
    if (slot) unlink_free(d, slot);
  } else if (slot) {
    rc = store_value(*slot, v);
    if (rc == 0) set_expire(d, *slot, expire);
  } else {
    entry *e = new_entry(h, k, klen);
    rc = e ? store_value(e, v) : -ENOMEM;
    if (rc == 0) {
      e->expire = expire;
      insert(d, e, &now);
    } else {
      free(e);
    }
  }
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int shdict_set(shdict *d, const char *k, size_t klen, const shd_value *v, int64_t expire) {
  return put(d, k, klen, v, expire, false);
}

int shdict_add(shdict *d, const char *k, size_t klen, const shd_value *v, int64_t expire) {
  return put(d, k, klen, v, expire, true);
}

static bool is_number(const shd_value *v) {
  return v->type == SHD_INT || v->type == SHD_FLOAT;
}

static double as_double(const shd_value *v) {
  return v->type == SHD_INT ? (double)v->u.i : v->u.f;
}

static shd_value num_add(const shd_value *a, const shd_value *b) {
  shd_value r;
  if (a->type == SHD_INT && b->type == SHD_INT) {
    r.type = SHD_INT;
    r.u.i = (int64_t)((uint64_t)a->u.i + (uint64_t)b->u.i); /* wraps, as Lua */
  } else {
    r.type = SHD_FLOAT;
    r.u.f = as_double(a) + as_double(b);
  }
  return r;
}

/* incr_locked — shdict_incr with the dict locked */
static int incr_locked(shdict *d, uint64_t h, const char *k, size_t klen, const shd_value *n,
                       const shd_value *init, shd_value *out) {
  int64_t now = 0;
  sweep_some(d, &now);
  entry **slot = lookup(d, h, k, klen, &now);
  if (!slot) {
    if (!init) return -ENOENT;
    entry *e = new_entry(h, k, klen);
    if (!e) return -ENOMEM;
    *out = num_add(init, n);
    store_value(e, out); /* a number: cannot fail */
    insert(d, e, &now);
    return 0;
  }
  entry *e = *slot;
  if (e->type != SHD_INT && e->type != SHD_FLOAT) return -EINVAL;
  shd_value cur = {.type = e->type};
  if (e->type == SHD_INT)
    cur.u.i = e->u.i;
  else
    cur.u.f = e->u.f;
  *out = num_add(&cur, n);
  store_value(e, out);
  return 0;
}

int shdict_incr(shdict *d, const char *k, size_t klen, const shd_value *n, const shd_value *init,
                shd_value *out) {
  if (!is_number(n) || (init && !is_number(init))) return -EINVAL;
  uint64_t h = hash_key(k, klen);
  pthread_mutex_lock(&d->lock);
  int rc = incr_locked(d, h, k, klen, n, init, out);
  pthread_mutex_unlock(&d->lock);
  return rc;
}

int shdict_ttl(shdict *d, const char *k, size_t klen, int64_t *left) {
  uint64_t h = hash_key(k, klen);
  int64_t now = 0;
  pthread_mutex_lock(&d->lock);
  entry **slot = lookup(d, h, k, klen, &now);
  int64_t expire = slot ? (*slot)->expire : 0;
  pthread_mutex_unlock(&d->lock);
  if (!slot) return -ENOENT;
  *left = expire ? expire - (now ? now : mono_now()) : 0;
  if (expire && *left <= 0) *left = 1; /* live a moment ago */
  return 0;
}

int shdict_delete(shdict *d, const char *k, size_t klen) {
  uint64_t h = hash_key(k, klen);
  int64_t now = 0;
  pthread_mutex_lock(&d->lock);
  sweep_some(d, &now);
  entry **slot = lookup(d, h, k, klen, &now);
  if (slot) unlink_free(d, slot);
  pthread_mutex_unlock(&d->lock);
  return slot ? 0 : -ENOENT;
}

/* fill_keys — copies the first nk keys of the (swept) table into ks */
static void fill_keys(shdict *d, shd_keys *ks, size_t nk) {
  char *bytes = (char *)&ks->k[nk];
  size_t i = 0;
  for (size_t b = 0; b <= d->mask && i < nk; b++) {
    for (entry *e = d->buckets[b]; e && i < nk; e = e->next, i++) {
      memcpy(bytes, e->key, e->klen);
      ks->k[i].p = bytes;
      ks->k[i].len = e->klen;
      bytes += e->klen;
    }
  }
  ks->n = nk;
}

int shdict_keys(shdict *d, size_t max, shd_keys **out) {
  int64_t now = 0;
  pthread_mutex_lock(&d->lock);
  sweep_all(d, &now); /* everything left is live at `now` */
  size_t nk = max && max < d->n ? max : d->n, bytes = 0, i = 0;
  for (size_t b = 0; b <= d->mask && i < nk; b++)
    for (entry *e = d->buckets[b]; e && i < nk; e = e->next, i++) bytes += e->klen;
  shd_keys *ks = malloc(sizeof *ks + nk * sizeof ks->k[0] + bytes);
  if (ks) fill_keys(d, ks, nk);
  pthread_mutex_unlock(&d->lock);
  *out = ks;
  return ks ? 0 : -ENOMEM;
}

/* ---------- registry ---------- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static shdict *reg_head;

shdict *shdict_open(const char *name, size_t len) {
  pthread_mutex_lock(&reg_lock);
  shdict *d = reg_head;
  while (d && (d->namelen != len || memcmp(d->name, name, len) != 0)) d = d->reg_next;
  if (!d) {
    d = shdict_new(name, len);
    d->reg_next = reg_head;
    reg_head = d;
  }
  pthread_mutex_unlock(&reg_lock);
  return d;
}

void shdict_registry_free(void) {
  pthread_mutex_lock(&reg_lock);
  shdict *d = reg_head;
  reg_head = NULL;
  pthread_mutex_unlock(&reg_lock);
  while (d) {
    shdict *next = d->reg_next;
    shdict_free(d);
    d = next;
  }
}
