/*
** common.h — shared helpers for the goluarun core.
**
** Invariants: nothing here owns state. Time inside the core is absolute
** monotonic nanoseconds (int64_t); 0 means "no deadline". Broken internal
** invariants go through rt_throw(), which prints and aborts: they are bugs,
** never conditions of the world.
*/
#ifndef GLR_COMMON_H
#define GLR_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GLR_LIKELY(x) __builtin_expect(!!(x), 1)
#define GLR_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GLR_INTERNAL __attribute__((visibility("hidden")))

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_US INT64_C(1000)
#define DEADLINE_NONE INT64_C(0)
#define DEADLINE_MAX INT64_MAX

/* rt_throw — Go: throw. A broken invariant: print and abort. */
GLR_INTERNAL _Noreturn void rt_throw(const char *msg);

/* mono_now — monotonic clock in ns (CLOCK_MONOTONIC, vDSO). */
GLR_INTERNAL int64_t mono_now(void);

/* deadline_from_seconds — converts a relative timeout in seconds to an
** absolute deadline, clamping huge values to DEADLINE_MAX so they never wrap
** into the past, and negative ones to "already passed" (now - 1). */
GLR_INTERNAL int64_t deadline_from_seconds(double s);

/* x_malloc/x_calloc/x_realloc — allocation that throws on failure (core
** structures only; Lua-facing allocations go through Lua). */
GLR_INTERNAL void *x_malloc(size_t n);
GLR_INTERNAL void *x_calloc(size_t n, size_t sz);
GLR_INTERNAL void *x_realloc(void *p, size_t n);

#endif
