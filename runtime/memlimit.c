/* memlimit.c — see memlimit.h. */
#include "memlimit.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* the process's figures: limit and hook const after memlimit_setup */
static struct {
  _Atomic int64_t inuse;    /* atomic: bytes published by every VM */
  _Atomic int64_t trigger;  /* atomic: count at which the hook runs next */
  int64_t limit;            /* const after setup: 0 = none */
  int64_t soft;             /* const after setup: MEMLIMIT_SOFT_PCT of limit */
  memlimit_hook hook;       /* const after setup */
  void *hook_ud;            /* const after setup */
  /* allocation-failure injection (GOLUA_ALLOCFAIL): const after setup */
  bool fail;                 /* any of the below */
  int64_t fail_nth;          /* refuse the nth growth; 0 = not by count */
  uint64_t fail_seed;        /* seed of every VM's stream */
  uint32_t fail_ppm;         /* refuse each growth with this probability */
  _Atomic int64_t fail_count; /* atomic: growths counted so far */
} ml = {.trigger = INT64_MAX};

void memlimit_failsetup(int64_t nth, uint64_t seed, uint32_t ppm) {
  ml.fail_nth = nth > 0 ? nth : 0;
  ml.fail_seed = seed;
  ml.fail_ppm = ppm;
  ml.fail = ml.fail_nth || ml.fail_ppm;
  atomic_store(&ml.fail_count, 0);
}

void memlimit_vm_init(memvm *v, struct G *const *curg, int id) {
  v->delta = 0;
  v->flushed = 0;
  v->curg = curg;
  v->failnext = false;
  chaos_rng_init(&v->failrng, ml.fail_seed, (uint64_t)id);
  v->cached = 0;
  for (int k = 0; k < MEMLIMIT_CLASSES; k++) v->free_small[k] = NULL;
}

/* ---------- small blocks kept for reuse (memlimit.h) ---------- */

/* the class of an n-byte block (1 <= n <= MEMLIMIT_SMALL_MAX), and its
** bytes: glibc's usable size for malloc(n) (chunks of 16-byte steps, 8 of
** them its header, 32 at least) */
static inline int class_of(size_t n) { return n <= 24 ? 0 : (int)((n - 9) >> 4); }
static inline size_t class_bytes(int k) { return 24 + 16 * (size_t)k; }

/* a new block of n bytes: a kept one of its class, or malloc's */
static void *block_new(memvm *v, size_t n) {
  if (n > MEMLIMIT_SMALL_MAX || MEMLIMIT_CACHE_MAX == 0) return malloc(n);
  int k = class_of(n);
  void *b = v->free_small[k];
  if (!b) return malloc(class_bytes(k));
  memcpy(&v->free_small[k], b, sizeof b);
  v->cached -= (int64_t)class_bytes(k);
  return b;
}

/* frees the n-byte block b: kept for reuse while the lists have room */
static void block_free(memvm *v, void *b, size_t n) {
  int k = n <= MEMLIMIT_SMALL_MAX ? class_of(n) : -1;
  if (k < 0 || MEMLIMIT_CACHE_MAX == 0 || v->cached >= MEMLIMIT_CACHE_MAX ||
      malloc_usable_size(b) < class_bytes(k)) { /* (not a whole class: see memlimit.h) */
    free(b);
    return;
  }
  memcpy(b, &v->free_small[k], sizeof b);
  v->free_small[k] = b;
  v->cached += (int64_t)class_bytes(k);
}

/* b (o bytes) resized to n: in place within a small class (if b holds n),
** through a new block when either side is small (so every small block is
** a whole class's), else realloc's. A shrink never fails (Lua relies on
** it): with no new block, b itself holds its n bytes, a whole class's too */
static void *block_resize(memvm *v, void *b, size_t o, size_t n) {
  if (!b) return block_new(v, n);
  if (MEMLIMIT_CACHE_MAX == 0 || (o > MEMLIMIT_SMALL_MAX && n > MEMLIMIT_SMALL_MAX))
    return realloc(b, n); /* (no lists: blocks are malloc's exact sizes) */
  if (o <= MEMLIMIT_SMALL_MAX && n <= MEMLIMIT_SMALL_MAX && class_of(o) == class_of(n) &&
      (n <= o || malloc_usable_size(b) >= n)) /* (a block malloc sized exactly) */
    return b;
  void *nb = block_new(v, n);
  if (!nb) return n < o ? b : NULL;
  memcpy(nb, b, o < n ? o : n);
  block_free(v, b, o);
  return nb;
}

void memlimit_drain(memvm *v) {
  for (int k = 0; k < MEMLIMIT_CLASSES; k++) {
    void *b = v->free_small[k];
    while (b) {
      void *next;
      memcpy(&next, b, sizeof next);
      free(b);
      b = next;
    }
    v->free_small[k] = NULL;
  }
  v->cached = 0;
}

/* inject — should this growth fail (GOLUA_ALLOCFAIL)? */
static bool inject(memvm *v) {
  if (!*v->curg) return false; /* the scheduler's own work is never refused */
  if (v->failnext) {
    v->failnext = false;
    return true;
  }
  bool hit = ml.fail_nth ? atomic_fetch_add_explicit(&ml.fail_count, 1, memory_order_relaxed) + 1 ==
                               ml.fail_nth
                         : chaos_hit(&v->failrng, ml.fail_ppm);
  v->failnext = hit;
  return hit;
}

void memlimit_setup(int64_t limit, memlimit_hook hook, void *ud) {
  ml.limit = limit > 0 ? limit : 0;
  ml.soft = ml.limit / 100 * MEMLIMIT_SOFT_PCT;
  ml.hook = hook;
  ml.hook_ud = ud;
  atomic_store(&ml.trigger, ml.limit ? ml.soft : INT64_MAX);
}

int64_t memlimit_inuse(void) { return atomic_load_explicit(&ml.inuse, memory_order_relaxed); }

int64_t memlimit_limit(void) { return ml.limit; }

/* publish — add d to the count; the first batch past the trigger calls
** the hook (the CAS makes it once per arming) */
static void publish(int64_t d) {
  int64_t now = atomic_fetch_add_explicit(&ml.inuse, d, memory_order_relaxed) + d;
  if (GLR_LIKELY(!ml.limit) || d < 0) return; /* frees never call the hook */
  int64_t t = atomic_load_explicit(&ml.trigger, memory_order_relaxed);
  if (now >= t && atomic_compare_exchange_strong(&ml.trigger, &t, INT64_MAX) && ml.hook)
    ml.hook(ml.hook_ud);
}

void memlimit_flush(memvm *v) {
  if (v->delta) publish(v->delta);
  v->flushed += v->delta;
  v->delta = 0;
}

void memlimit_adopt(memvm *v, int64_t bytes) {
  v->delta += bytes;
  memlimit_flush(v);
}

void memlimit_collected(void) {
  if (!ml.limit) return;
  int64_t now = memlimit_inuse();
  int64_t next = now + (ml.limit - now) / 2;
  atomic_store(&ml.trigger, next > ml.soft ? next : ml.soft);
}

/* grow_slow — a growth that takes v's pending bytes past a batch: refused
** past the limit while a goroutine runs, else done and published */
static void *grow_slow(memvm *v, void *ptr, size_t old, size_t nsize, int64_t grow) {
  if (ml.limit && *v->curg && memlimit_inuse() + v->delta + grow > ml.limit)
    return NULL; /* Lua collects this VM and retries, then raises */
  void *np = block_resize(v, ptr, old, nsize);
  if (np) {
    v->delta += grow;
    memlimit_flush(v);
  }
  return np;
}

void *memlimit_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memvm *v = ud;
  int64_t old = ptr ? (int64_t)osize : 0; /* with no block, osize is a type */
  if (nsize == 0) {
    if (ptr) block_free(v, ptr, osize);
    v->delta -= old;
    if (GLR_UNLIKELY(v->delta <= -MEMLIMIT_BATCH)) memlimit_flush(v);
    return NULL;
  }
  int64_t grow = (int64_t)nsize - old;
  if (GLR_UNLIKELY(ml.fail) && grow > 0 && inject(v)) return NULL;
  if (GLR_UNLIKELY(v->delta + grow >= MEMLIMIT_BATCH)) return grow_slow(v, ptr, (size_t)old, nsize, grow);
  void *np = block_resize(v, ptr, (size_t)old, nsize);
  if (GLR_LIKELY(np != NULL)) {
    v->delta += grow;
    if (GLR_UNLIKELY(v->delta <= -MEMLIMIT_BATCH)) memlimit_flush(v);
  }
  return np;
}
