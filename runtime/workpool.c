/* workpool.c — see workpool.h. */
#include "workpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  workjob *head, *tail; /* guarded by lock */
  int threads, idle;    /* guarded by lock */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static atomic_int outstanding; /* submitted jobs whose done() has not returned */

int workpool_outstanding(void) { return atomic_load(&outstanding); }

static workjob *take_locked(void) {
  workjob *j = pool.head;
  if (j) {
    pool.head = j->next;
    if (!pool.head) pool.tail = NULL;
    j->next = NULL;
  }
  return j;
}

static void *worker_main(void *arg) {
  (void)arg;
  sigset_t set;
  sigfillset(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* signals go to the Ms */
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    workjob *j = take_locked();
    if (!j) {
      pool.idle++;
      pthread_cond_wait(&pool.cond, &pool.lock);
      pool.idle--;
      continue;
    }
    pthread_mutex_unlock(&pool.lock);
    j->run(j);
    j->done(j); /* j may be freed from here on */
    atomic_fetch_sub(&outstanding, 1);
    pthread_mutex_lock(&pool.lock);
  }
  return NULL;
}

int workpool_submit(workjob *j) {
  j->next = NULL;
  pthread_mutex_lock(&pool.lock);
  if (pool.tail) pool.tail->next = j;
  else pool.head = j;
  pool.tail = j;
  int e = 0;
  if (pool.idle == 0 && pool.threads < WORKPOOL_MAX) {
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    e = pthread_create(&t, &at, worker_main, NULL);
    pthread_attr_destroy(&at);
    if (e == 0) pool.threads++;
    else if (pool.threads > 0) e = 0; /* the existing workers will get to it */
    if (e != 0) { /* no worker at all: unqueue */
      pool.head = pool.tail = NULL;
    }
  }
  if (e == 0) atomic_fetch_add(&outstanding, 1);
  pthread_cond_signal(&pool.cond);
  pthread_mutex_unlock(&pool.lock);
  return -e;
}
