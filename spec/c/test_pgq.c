/* test_pgq.c — portable-goroutine queues: FIFO, steal-half, and a
** multi-thread stress (owners putting and taking, thieves stealing) in
** which every record is taken exactly once (run under TSan in CI). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/pgq.h"
#include "check.h"

typedef struct item {
  portable q; /* first member */
  int id;
} item;

#define NQ 4
#define PER 20000

static pgq queues[NQ];
static item items[NQ * PER];
static _Atomic int taken[NQ * PER];
static _Atomic int total_taken;

static void test_fifo_and_steal(void) {
  pgq a, b;
  pgq_init(&a);
  pgq_init(&b);
  item it[7];
  for (int i = 0; i < 7; i++) {
    it[i].id = i;
    pgq_put(&a, &it[i].q);
  }
  CHECK_EQ(atomic_load(&a.n), 7);
  CHECK_EQ(pgq_steal_half(&a, &b), 4); /* ceil(7/2) from the head */
  CHECK_EQ(atomic_load(&a.n), 3);
  CHECK_EQ(atomic_load(&b.n), 4);
  for (int i = 0; i < 4; i++) CHECK_EQ(((item *)pgq_get(&b))->id, i);
  for (int i = 4; i < 7; i++) CHECK_EQ(((item *)pgq_get(&a))->id, i);
  CHECK(pgq_get(&a) == NULL);
  CHECK_EQ(pgq_steal_half(&a, &b), 0);
  CHECK_EQ(pgq_steal_half(&a, &a), 0);
  pgq_free(&a);
  pgq_free(&b);
}

static void take(portable *w) {
  item *it = (item *)w;
  CHECK_EQ(atomic_fetch_add(&taken[it->id], 1), 0);
  atomic_fetch_add(&total_taken, 1);
}

static void *worker(void *arg) {
  int me = (int)(intptr_t)arg;
  unsigned seed = (unsigned)me * 2654435761u + 7;
  int put = 0;
  while (atomic_load(&total_taken) < NQ * PER) {
    seed = seed * 1103515245u + 12345u;
    int op = (int)((seed >> 16) % 4);
    if (op <= 1 && put < PER) {
      pgq_put(&queues[me], &items[me * PER + put].q);
      put++;
    } else if (op == 2) {
      portable *w = pgq_get(&queues[me]);
      if (w) take(w);
    } else {
      int victim = (int)((seed >> 8) % NQ);
      if (pgq_steal_half(&queues[victim], &queues[me]) > 0) {
        portable *w = pgq_get(&queues[me]);
        if (w) take(w);
      }
    }
  }
  return NULL;
}

static void test_stress(void) {
  for (int i = 0; i < NQ; i++) pgq_init(&queues[i]);
  for (int i = 0; i < NQ * PER; i++) items[i].id = i;
  pthread_t t[NQ];
  for (int i = 0; i < NQ; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < NQ; i++) pthread_join(t[i], NULL);
  CHECK_EQ(atomic_load(&total_taken), NQ * PER);
  for (int i = 0; i < NQ * PER; i++) CHECK_EQ(atomic_load(&taken[i]), 1);
  for (int i = 0; i < NQ; i++) {
    CHECK_EQ(atomic_load(&queues[i].n), 0);
    pgq_free(&queues[i]);
  }
}

int main(void) {
  test_fifo_and_steal();
  test_stress();
  CHECK_DONE();
  return 0;
}
