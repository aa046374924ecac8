/* prof.c — see prof.h. */
#include "prof.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>

#include "handoff.h"

/* ---------- a P's sample table: folded stack -> count ---------- */

typedef struct prof_entry {
  struct prof_entry *next;
  uint64_t hash;
  uint64_t count;
  size_t len;
  char key[];
} prof_entry;

static uint64_t key_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
  return h;
}

static void table_grow(P *p) {
  size_t n = p->prof_nbuckets ? p->prof_nbuckets * 2 : 64;
  prof_entry **b = x_calloc(n, sizeof *b);
  for (size_t i = 0; i < p->prof_nbuckets; i++) {
    for (prof_entry *e = p->prof_buckets[i], *next; e; e = next) {
      next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
    }
  }
  free(p->prof_buckets);
  p->prof_buckets = b;
  p->prof_nbuckets = n;
}

/* table_add — count one sample of key (caller holds p->prof_lock) */
static void table_add(P *p, const char *key, size_t len) {
  uint64_t h = key_hash(key, len);
  for (prof_entry *e = p->prof_nbuckets ? p->prof_buckets[h & (p->prof_nbuckets - 1)] : NULL;
       e; e = e->next) {
    if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
      e->count++;
      return;
    }
  }
  if (p->prof_n >= p->prof_nbuckets) table_grow(p);
  prof_entry *e = x_malloc(sizeof *e + len + 1);
  e->hash = h;
  e->count = 1;
  e->len = len;
  memcpy(e->key, key, len);
  e->key[len] = '\0';
  e->next = p->prof_buckets[h & (p->prof_nbuckets - 1)];
  p->prof_buckets[h & (p->prof_nbuckets - 1)] = e;
  p->prof_n++;
}

static void table_clear(P *p) {
  for (size_t i = 0; i < p->prof_nbuckets; i++) {
    for (prof_entry *e = p->prof_buckets[i], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  }
  free(p->prof_buckets);
  p->prof_buckets = NULL;
  p->prof_nbuckets = p->prof_n = 0;
}

/* record — add a sample to p's table while the profile is on */
static void record(P *p, const char *key, size_t len) {
  pthread_mutex_lock(&p->prof_lock);
  if (atomic_load_explicit(&p->rt->prof_hz, memory_order_relaxed)) table_add(p, key, len);
  pthread_mutex_unlock(&p->prof_lock);
}

void prof_p_init(P *p) { pthread_mutex_init(&p->prof_lock, NULL); }

void prof_p_free(P *p) {
  table_clear(p);
  pthread_mutex_destroy(&p->prof_lock);
}

/* ---------- taking a sample (the P's M, in the count hook) ---------- */

typedef struct keybuf {
  char s[4096];
  size_t n;
} keybuf;

/* put — append s, with ';' and newlines (folded-stack separators) replaced */
static void put(keybuf *b, const char *s) {
  if (b->n < sizeof b->s - 1) b->s[b->n++] = ';';
  for (; *s && b->n < sizeof b->s - 1; s++)
    b->s[b->n++] = *s == ';' || *s == '\n' ? ':' : *s;
}

static void put_frame(keybuf *b, lua_Debug *ar) {
  char f[512];
  const char *name = ar->name ? ar->name : "?";
  if (*ar->what == 'C')
    snprintf(f, sizeof f, "%s [C]", name);
  else if (*ar->what == 'm')
    snprintf(f, sizeof f, "main chunk (%s)", ar->short_src);
  else
    snprintf(f, sizeof f, "%s (%s:%d)", ar->name ? name : "function", ar->short_src,
             ar->linedefined);
  put(b, f);
}

/* stack_depth — frames on L, at most PROF_MAX_FRAMES */
static int stack_depth(lua_State *L) {
  lua_Debug ar;
  int n = 0;
  while (n < PROF_MAX_FRAMES && lua_getstack(L, n, &ar)) n++;
  return n;
}

void prof_sample(P *p, lua_State *L, const char *cwhat) {
  keybuf b = {.n = 0};
  snprintf(b.s, sizeof b.s, "p%d", p->id);
  b.n = strlen(b.s);
  int depth = stack_depth(L);
  if (depth == 0) put(&b, "[goroutine end]");
  for (int level = depth - 1; level >= 0; level--) {
    lua_Debug ar;
    if (!lua_getstack(L, level, &ar) || !lua_getinfo(L, "Sn", &ar)) continue;
    if (*ar.what == 'C' && !ar.name) continue; /* the runtime's entry functions */
    put_frame(&b, &ar);
  }
  if (cwhat && *cwhat) {
    char c[64];
    snprintf(c, sizeof c, "[C: %s]", cwhat);
    put(&b, c);
  }
  record(p, b.s, b.n);
}

/* ---------- the sampler thread ---------- */

static void pseudo(P *p, const char *what) {
  char k[64];
  int n = snprintf(k, sizeof k, "p%d;%s", p->id, what);
  record(p, k, (size_t)n);
}

/* tick — one sample of every P: ask the running ones, count the others */
static void tick(rt *r) {
  for (int i = 0; i < r->nprocs; i++) {
    P *p = r->ps[i];
    if (atomic_load(&p->running)) {
      const char *c = atomic_load_explicit(&p->cwhat, memory_order_relaxed);
      atomic_store(&p->sample_want, c ? c : "");
      pthread_kill(atomic_load(&p->m)->thread, SIGURG);
    } else if (atomic_load(&p->pstatus) == P_SYSCALL) {
      pseudo(p, "[blocking C call]");
    } else if (atomic_load(&p->sleeping)) {
      pseudo(p, "[idle]");
    } else {
      pseudo(p, "[scheduler]");
    }
  }
}

/* abs_at — CLOCK_MONOTONIC time t as a timespec (the condition's clock) */
static struct timespec abs_at(int64_t t) {
  return (struct timespec){.tv_sec = (time_t)(t / NS_PER_SEC), .tv_nsec = (long)(t % NS_PER_SEC)};
}

static void *sampler_main(void *arg) {
  rt *r = arg;
  sigset_t set;
  sigfillset(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  int64_t period = NS_PER_SEC / atomic_load(&r->prof_hz);
  int64_t next = mono_now();
  pthread_mutex_lock(&r->prof_lock);
  while (!r->prof_quit) {
    next += period;
    struct timespec ts = abs_at(next);
    while (!r->prof_quit && pthread_cond_timedwait(&r->prof_cond, &r->prof_lock, &ts) == 0) {
    }
    if (r->prof_quit) break;
    pthread_mutex_unlock(&r->prof_lock);
    tick(r);
    int64_t now = mono_now();
    if (now - next > period) next = now; /* fell behind: no burst */
    pthread_mutex_lock(&r->prof_lock);
  }
  pthread_mutex_unlock(&r->prof_lock);
  return NULL;
}

void prof_init(rt *r) {
  pthread_mutex_init(&r->prof_lock, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&r->prof_cond, &a);
  pthread_condattr_destroy(&a);
}

void prof_free(rt *r) {
  pthread_mutex_destroy(&r->prof_lock);
  pthread_cond_destroy(&r->prof_cond);
}

int prof_start(rt *r, int hz) {
  pthread_mutex_lock(&r->prof_lock);
  int rc = 0;
  if (atomic_load(&r->prof_on)) {
    rc = -1;
  } else if (atomic_load(&r->stopping)) {
    rc = -2; /* rt_run may have halted the sampler for good */
  } else {
    atomic_store(&r->prof_hz, hz < 1 ? 1 : hz > PROF_HZ_MAX ? PROF_HZ_MAX : hz);
    r->prof_quit = false;
    atomic_store(&r->prof_on, true);
    r->prof_running = pthread_create(&r->prof_thread, NULL, sampler_main, r) == 0;
    if (!r->prof_running) {
      atomic_store(&r->prof_on, false);
      rc = -2;
    }
  }
  pthread_mutex_unlock(&r->prof_lock);
  return rc;
}

void prof_halt(rt *r) {
  pthread_mutex_lock(&r->prof_lock);
  bool join = r->prof_running;
  r->prof_running = false;
  r->prof_quit = true;
  pthread_cond_broadcast(&r->prof_cond);
  pthread_mutex_unlock(&r->prof_lock);
  if (join) pthread_join(r->prof_thread, NULL);
}

/* drain — append p's samples to out (growing it) and empty p's table */
static void drain(P *p, char **out, size_t *len, size_t *cap) {
  pthread_mutex_lock(&p->prof_lock);
  for (size_t i = 0; i < p->prof_nbuckets; i++) {
    for (prof_entry *e = p->prof_buckets[i]; e; e = e->next) {
      size_t need = *len + e->len + 24;
      if (need > *cap) {
        *cap = need * 2;
        *out = x_realloc(*out, *cap);
      }
      *len += (size_t)snprintf(*out + *len, *cap - *len, "%s %llu\n", e->key,
                               (unsigned long long)e->count);
    }
  }
  table_clear(p);
  pthread_mutex_unlock(&p->prof_lock);
}

char *prof_stop(rt *r, size_t *len) {
  if (!atomic_load(&r->prof_on)) return NULL;
  prof_halt(r);
  atomic_store(&r->prof_hz, 0); /* from here record() drops samples */
  size_t cap = 256;
  char *out = x_malloc(cap);
  *len = 0;
  out[0] = '\0';
  for (int i = 0; i < r->nprocs; i++) drain(r->ps[i], &out, len, &cap);
  for (int i = 0; i < r->nprocs; i++) atomic_store(&r->ps[i]->sample_want, NULL);
  atomic_store(&r->prof_on, false); /* the next profile may start */
  return out;
}
