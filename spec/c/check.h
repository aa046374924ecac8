/*
** check.h — a tiny assertion helper for the C unit tests in spec/c.
**
** CHECK(cond)        on failure prints "file:line: CHECK(expr) failed" and
**                    exits with status 1 (the rest of the test is skipped).
** CHECK_EQ(a, b)     integer equality; prints both values on failure.
** check_xorshift(&s) the next value of a seeded xorshift64 stream.
** CHECK_DONE()       prints "N passed, 0 failed" and returns 0 from main.
**
** Every CHECK that holds counts as one pass. The counter is atomic so
** helper threads may CHECK too.
*/
#ifndef GLR_SPEC_CHECK_H
#define GLR_SPEC_CHECK_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static _Atomic unsigned long check_passed_;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,     \
              #cond);                                                      \
      fflush(stderr);                                                      \
      exit(1);                                                             \
    }                                                                      \
    atomic_fetch_add(&check_passed_, 1);                                   \
  } while (0)

#define CHECK_EQ(a, b)                                                     \
  do {                                                                     \
    intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                       \
    if (a_ != b_) {                                                        \
      fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %jd != %jd\n",      \
              __FILE__, __LINE__, #a, #b, a_, b_);                         \
      fflush(stderr);                                                      \
      exit(1);                                                             \
    }                                                                      \
    atomic_fetch_add(&check_passed_, 1);                                   \
  } while (0)

/* check_xorshift — the next value of the xorshift64 stream whose state is
** *s (never 0): the tests' seeded random inputs */
static inline uint64_t check_xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

#define CHECK_DONE()                                                       \
  do {                                                                     \
    printf("%lu passed, 0 failed\n", atomic_load(&check_passed_));         \
    fflush(stdout);                                                        \
    return 0;                                                              \
  } while (0)

#endif
