/* chaos.c — see chaos.h. */
#include "chaos.h"

/* splitmix64: spreads (seed, stream) over the state space, never 0 out */
static uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void chaos_rng_init(chaos_rng *r, uint64_t seed, uint64_t stream) {
  r->s = mix(seed ^ mix(stream));
  if (r->s == 0) r->s = 1;
}

uint64_t chaos_next(chaos_rng *r) { /* xorshift64* */
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

bool chaos_hit(chaos_rng *r, uint32_t ppm) {
  return ppm && (uint32_t)(chaos_next(r) >> 32) % CHAOS_PPM < ppm;
}

uint64_t chaos_below(chaos_rng *r, uint64_t n) { return (chaos_next(r) >> 11) % n; }
