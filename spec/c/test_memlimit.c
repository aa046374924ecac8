/*
** test_memlimit.c — a VM's allocator (runtime/memlimit.h): the count and
** the small blocks kept for reuse.
**
** A model keeps every live block's size and fill byte; random allocations,
** frees and resizes (sizes around every class edge, small and big, growing
** and shrinking across classes) check after each step that a block's bytes
** survive a resize, that the VM's count is the sum of the live sizes, and
** that the kept bytes stay under MEMLIMIT_CACHE_MAX. A block the allocator
** did not make (malloc's, as luaL_newstate's first blocks) may be freed
** through it; under valgrind, whose malloc sizes blocks exactly, a block
** used past its size is reported.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/memlimit.h"
#include "check.h"

#define LIVE 512
#define STEPS 200000

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return check_xorshift(&rng); }

static struct G *no_g; /* no goroutine runs: growth is never refused */

typedef struct {
  unsigned char *p;
  size_t n;
  unsigned char fill;
} block;

static size_t class_bytes_of(size_t n) { return n <= 24 ? 24 : 24 + ((n - 9) >> 4) * 16; }

/* a size near a class edge, inside the small range, or big */
static size_t some_size(void) {
  switch (rnd() % 4) {
  case 0: return 1 + rnd() % MEMLIMIT_SMALL_MAX;
  case 1: { /* an edge: 24 + 16k, one either side */
    size_t e = 24 + 16 * (rnd() % MEMLIMIT_CLASSES);
    return e - 1 + rnd() % 3;
  }
  case 2: return MEMLIMIT_SMALL_MAX - 2 + rnd() % 5;
  default: return 1 + rnd() % 4096;
  }
}

static void check_bytes(const block *b) {
  for (size_t i = 0; i < b->n; i++)
    if (b->p[i] != b->fill) CHECK(!"a block's bytes changed");
}

static void set_bytes(block *b, unsigned char fill) {
  b->fill = fill;
  memset(b->p, fill, b->n);
}

static int64_t live_sum(const block *live) {
  int64_t s = 0;
  for (int i = 0; i < LIVE; i++) s += live[i].p ? (int64_t)live[i].n : 0;
  return s;
}

/* one random step on slot b: allocate, free, or resize it */
static void step(memvm *v, block *b) {
  if (!b->p) {
    b->n = some_size();
    b->p = memlimit_alloc(v, NULL, 4 /* a type, as Lua passes */, b->n);
    CHECK(b->p != NULL);
    set_bytes(b, (unsigned char)rnd());
  } else if (rnd() % 3 == 0) {
    check_bytes(b);
    CHECK(memlimit_alloc(v, b->p, b->n, 0) == NULL);
    b->p = NULL;
  } else {
    check_bytes(b);
    size_t n = some_size(), keep = n < b->n ? n : b->n;
    unsigned char *p = memlimit_alloc(v, b->p, b->n, n);
    CHECK(p != NULL);
    for (size_t i = 0; i < keep; i++)
      if (p[i] != b->fill) CHECK(!"a resize lost bytes");
    b->p = p;
    b->n = n;
    set_bytes(b, (unsigned char)rnd());
  }
}

static void test_random_model(void) {
  memvm v;
  memlimit_vm_init(&v, &no_g, 0);
  block live[LIVE] = {{0}};
  for (int s = 0; s < STEPS; s++) {
    step(&v, &live[rnd() % LIVE]);
    if (s % 997 == 0) {
      CHECK_EQ(memlimit_vm_bytes(&v), live_sum(live));
      CHECK(v.cached >= 0 && v.cached < MEMLIMIT_CACHE_MAX + MEMLIMIT_SMALL_MAX + 1);
    }
  }
  for (int i = 0; i < LIVE; i++)
    if (live[i].p) {
      check_bytes(&live[i]);
      memlimit_alloc(&v, live[i].p, live[i].n, 0);
    }
  CHECK_EQ(memlimit_vm_bytes(&v), 0);
  memlimit_drain(&v);
  CHECK_EQ(v.cached, 0);
  for (int k = 0; k < MEMLIMIT_CLASSES; k++) CHECK(v.free_small[k] == NULL);
}

/* a freed small block serves the next allocation of its class (LIFO),
** and a resize inside one class keeps the block */
static void test_reuse(void) {
  memvm v;
  memlimit_vm_init(&v, &no_g, 1);
  void *a = memlimit_alloc(&v, NULL, 0, 30);
  memlimit_alloc(&v, a, 30, 0);
  void *b = memlimit_alloc(&v, NULL, 0, 40); /* 30 and 40: one class */
  if (MEMLIMIT_CACHE_MAX > 0) CHECK(b == a);
  void *b2 = memlimit_alloc(&v, b, 40, 33); /* one class: in place */
  if (MEMLIMIT_CACHE_MAX > 0) CHECK(b2 == b); /* (no lists under ASan: realloc's) */
  CHECK(b2 != NULL);
  void *c = memlimit_alloc(&v, b2, 33, 41); /* the next class: moved */
  CHECK(c != NULL);
  memlimit_alloc(&v, c, 41, 0);
  memlimit_drain(&v);
  CHECK_EQ(v.cached, 0);
  CHECK_EQ(memlimit_vm_bytes(&v), 0);
}

/* past MEMLIMIT_CACHE_MAX, freed blocks go back to malloc */
static void test_cap(void) {
  memvm v;
  memlimit_vm_init(&v, &no_g, 2);
  enum { N = 2 * MEMLIMIT_CACHE_MAX / 200 + 10 };
  static void *p[N];
  for (int i = 0; i < N; i++) p[i] = memlimit_alloc(&v, NULL, 0, 200);
  for (int i = 0; i < N; i++) memlimit_alloc(&v, p[i], 200, 0);
  CHECK(v.cached <= MEMLIMIT_CACHE_MAX + MEMLIMIT_SMALL_MAX);
  memlimit_drain(&v);
  CHECK_EQ(v.cached, 0);
}

/* blocks malloc made (as luaL_newstate's) freed and resized through the
** allocator, every small size: their bytes survive, the count holds */
static void test_foreign_blocks(void) {
  memvm v;
  memlimit_vm_init(&v, &no_g, 3);
  for (size_t n = 1; n <= MEMLIMIT_SMALL_MAX + 1; n++) {
    unsigned char *p = malloc(n), *q = malloc(n);
    CHECK(p != NULL && q != NULL);
    memset(q, 0x5A, n);
    memlimit_adopt(&v, 2 * (int64_t)n);
    memlimit_alloc(&v, p, n, 0);
    q = memlimit_alloc(&v, q, n, n + 20);
    CHECK(q != NULL);
    for (size_t i = 0; i < n; i++) CHECK_EQ(q[i], 0x5A);
    memset(q, 0x33, n + 20); /* (valgrind: the block really holds n + 20) */
    memlimit_alloc(&v, q, n + 20, 0);
    /* the class's bytes are whole in whatever the lists hand out next */
    unsigned char *r = memlimit_alloc(&v, NULL, 0, class_bytes_of(n));
    memset(r, 1, class_bytes_of(n));
    memlimit_alloc(&v, r, class_bytes_of(n), 0);
  }
  CHECK_EQ(memlimit_vm_bytes(&v), 0);
  memlimit_drain(&v);
}

int main(void) {
  test_foreign_blocks();
  test_reuse();
  test_cap();
  test_random_model();
  CHECK_DONE();
}
