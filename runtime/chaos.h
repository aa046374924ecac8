/*
** chaos.h — the seeded random numbers of fault injection: GOLUA_CHAOS (the
** socket faults of sockio.c) and the random mode of GOLUA_ALLOCFAIL (the
** VMs' allocator, memlimit.c).
**
** Invariants:
**  - A chaos_rng is one stream: seeded from (seed, stream number) by
**    chaos_rng_init, so the same seed gives every P (or VM) the same
**    sequence on every run; a run is reproducible as far as its schedule
**    is (with -p 1 and the same inputs, the same calls get the same faults).
**  - A rate is in parts per million: 0 never hits, CHAOS_PPM always does.
**  - No locks, no allocation: a chaos_rng belongs to one owner (a P's
**    stream to the M holding the P, a VM's to the M holding its P) and is
**    touched by that thread only.
*/
#ifndef GLR_CHAOS_H
#define GLR_CHAOS_H

#include "common.h"

#define CHAOS_PPM 1000000u

typedef struct chaos_rng {
  uint64_t s; /* owner only: xorshift64* state, never 0 */
} chaos_rng;

/* chaos_rng_init — the stream `stream` of `seed` */
GLR_INTERNAL void chaos_rng_init(chaos_rng *r, uint64_t seed, uint64_t stream);
/* chaos_next — the next 64 random bits */
GLR_INTERNAL uint64_t chaos_next(chaos_rng *r);
/* chaos_hit — true with probability ppm / CHAOS_PPM */
GLR_INTERNAL bool chaos_hit(chaos_rng *r, uint32_t ppm);
/* chaos_below — uniform in 0..n-1 (n > 0) */
GLR_INTERNAL uint64_t chaos_below(chaos_rng *r, uint64_t n);

#endif
