/* common.c — see common.h. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void rt_throw(const char *msg) {
  fprintf(stderr, "fatal error: goluarun: %s\n", msg);
  fflush(stderr);
  abort();
}

int64_t mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

int64_t deadline_from_seconds(double s) {
  int64_t now = mono_now();
  if (s <= 0) return now - 1 > 0 ? now - 1 : 1;
  if (s >= (double)(DEADLINE_MAX - now) / 1e9) return DEADLINE_MAX;
  int64_t d = now + (int64_t)(s * 1e9);
  return d > now ? d : now + 1;
}

void *x_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) rt_throw("out of memory");
  return p;
}

void *x_calloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) rt_throw("out of memory");
  return p;
}

void *x_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) rt_throw("out of memory");
  return q;
}
