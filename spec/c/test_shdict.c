/*
** test_shdict.c — shared dictionaries (runtime/shdict.h), no Lua.
**
** Deterministic sections: value types round-trip (integer vs float, NaN,
** empty and binary strings, -ENOBUFS then a retry), set/replace/delete with
** nil, add ("exists", add after delete/expiry), incr (integer, float on
** either side, wrap-around, init, "not found", "not a number", expiry kept),
** binary keys (NULs, prefixes of each other), TTL (an expiry in the past is
** absent at once; a short one disappears within a bounded wait; set without
** ttl clears it), count/keys (bounded, expired keys left out), growth to
** 20,000 keys and back, the registry (same name → same dict, names with
** NULs are distinct, free then reopen).
**
** Concurrent sections (run them under TSan): 4 threads × 25,000 incr of one
** key give exactly 100,000 (the acceptance test); 4 threads doing random
** set/get/add/incr/delete/keys/count with TTLs on a small key space, with
** typed values checked on every read; 8 threads opening the same names.
*/
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../runtime/shdict.h"
#include "check.h"

#define S(lit) lit, sizeof(lit) - 1

static shd_value vint(int64_t i) { return (shd_value){.type = SHD_INT, .u.i = i}; }
static shd_value vflt(double f) { return (shd_value){.type = SHD_FLOAT, .u.f = f}; }
static shd_value vbool(bool b) { return (shd_value){.type = SHD_BOOL, .u.b = b}; }
static shd_value vstr(const char *p, size_t n) {
  return (shd_value){.type = SHD_STR, .u.s = {p, n}};
}

static char gbuf[4096];

/* shdict_count — number of live entries (test-only, through shdict_keys,
** which frees the expired ones first as the old runtime function did). */
static size_t shdict_count(shdict *d) {
  shd_keys *ks;
  CHECK_EQ(shdict_keys(d, 0, &ks), 0);
  size_t n = ks->n;
  free(ks);
  return n;
}

static int get(shdict *d, const char *k, size_t klen, shd_value *v) {
  return shdict_get(d, k, klen, v, gbuf, sizeof gbuf);
}

static bool absent(shdict *d, const char *k, size_t klen) {
  shd_value v;
  return get(d, k, klen, &v) == -ENOENT;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* wait_absent — bounded poll (5 s) for k to disappear */
static bool wait_absent(shdict *d, const char *k, size_t klen) {
  int64_t deadline = mono_now() + 5 * NS_PER_SEC;
  while (mono_now() < deadline) {
    if (absent(d, k, klen)) return true;
    sleep_ms(2);
  }
  return false;
}

/* ------------------------------------------------------------------ */

static void test_types(void) {
  shdict *d = shdict_new(S("types"));
  shd_value v, in;
  size_t nlen;
  CHECK(memcmp(shdict_name(d, &nlen), "types", 5) == 0 && nlen == 5);
  CHECK_EQ(get(d, S("x"), &v), -ENOENT);

  in = vint(INT64_MIN);
  CHECK_EQ(shdict_set(d, S("i"), &in, 0), 0);
  CHECK_EQ(get(d, S("i"), &v), 0);
  CHECK_EQ(v.type, SHD_INT);
  CHECK(v.u.i == INT64_MIN);

  in = vflt(3.0);
  CHECK_EQ(shdict_set(d, S("f"), &in, 0), 0);
  CHECK_EQ(get(d, S("f"), &v), 0);
  CHECK_EQ(v.type, SHD_FLOAT);
  CHECK(v.u.f == 3.0);

  in = vflt(NAN);
  CHECK_EQ(shdict_set(d, S("nan"), &in, 0), 0);
  CHECK_EQ(get(d, S("nan"), &v), 0);
  CHECK(v.type == SHD_FLOAT && isnan(v.u.f));

  in = vbool(false);
  CHECK_EQ(shdict_set(d, S("b"), &in, 0), 0);
  CHECK_EQ(get(d, S("b"), &v), 0);
  CHECK(v.type == SHD_BOOL && !v.u.b);

  in = vstr("", 0);
  CHECK_EQ(shdict_set(d, S("e"), &in, 0), 0);
  CHECK_EQ(get(d, S("e"), &v), 0);
  CHECK(v.type == SHD_STR && v.u.s.len == 0);

  char bin[] = {'a', 0, 'b', 0, 0, (char)0xff};
  char src[sizeof bin];
  memcpy(src, bin, sizeof bin);
  in = vstr(src, sizeof src);
  CHECK_EQ(shdict_set(d, S("s"), &in, 0), 0);
  memset(src, 'z', sizeof src); /* the dict copied it */
  CHECK_EQ(get(d, S("s"), &v), 0);
  CHECK(v.type == SHD_STR && v.u.s.len == sizeof bin && v.u.s.p == gbuf);
  CHECK(memcmp(v.u.s.p, bin, sizeof bin) == 0);

  /* too small a buffer: the needed size, then a retry */
  char small[4];
  CHECK_EQ(shdict_get(d, S("s"), &v, small, sizeof small), -ENOBUFS);
  CHECK_EQ(v.u.s.len, sizeof bin);
  char *big = malloc(v.u.s.len);
  CHECK_EQ(shdict_get(d, S("s"), &v, big, v.u.s.len), 0);
  CHECK(memcmp(big, bin, sizeof bin) == 0);
  free(big);
  /* a non-string never needs the buffer */
  CHECK_EQ(shdict_get(d, S("i"), &v, NULL, 0), 0);

  /* replace with another type, then delete with nil / NULL */
  in = vstr(S("str"));
  CHECK_EQ(shdict_set(d, S("i"), &in, 0), 0);
  in = vint(7);
  CHECK_EQ(shdict_set(d, S("i"), &in, 0), 0);
  CHECK_EQ(get(d, S("i"), &v), 0);
  CHECK(v.type == SHD_INT && v.u.i == 7);
  in.type = SHD_NIL;
  CHECK_EQ(shdict_set(d, S("i"), &in, 0), 0);
  CHECK(absent(d, S("i")));
  CHECK_EQ(shdict_set(d, S("s"), NULL, 0), 0);
  CHECK(absent(d, S("s")));
  CHECK_EQ(shdict_set(d, S("never"), NULL, 0), 0); /* deleting nothing is fine */
  CHECK_EQ(shdict_count(d), 4);                      /* f nan b e */
  CHECK_EQ(shdict_delete(d, S("f")), 0);
  CHECK_EQ(shdict_delete(d, S("f")), -ENOENT);
  CHECK_EQ(shdict_count(d), 3);
  shdict_free(d);
}

static void test_add(void) {
  shdict *d = shdict_new(S("add"));
  shd_value a = vint(1), b = vint(2), v;
  CHECK_EQ(shdict_add(d, S("k"), &a, 0), 0);
  CHECK_EQ(shdict_add(d, S("k"), &b, 0), -EEXIST);
  CHECK_EQ(get(d, S("k"), &v), 0);
  CHECK_EQ(v.u.i, 1);
  CHECK_EQ(shdict_delete(d, S("k")), 0);
  CHECK_EQ(shdict_add(d, S("k"), &b, 0), 0);
  CHECK_EQ(get(d, S("k"), &v), 0);
  CHECK_EQ(v.u.i, 2);
  /* add of nil on a missing key stores nothing; on a present one: exists */
  CHECK_EQ(shdict_add(d, S("n"), NULL, 0), 0);
  CHECK(absent(d, S("n")));
  CHECK_EQ(shdict_add(d, S("k"), NULL, 0), -EEXIST);
  /* an expired entry does not block add */
  CHECK_EQ(shdict_set(d, S("old"), &a, mono_now() - 1), 0);
  CHECK_EQ(shdict_add(d, S("old"), &b, 0), 0);
  CHECK_EQ(get(d, S("old"), &v), 0);
  CHECK_EQ(v.u.i, 2);
  shdict_free(d);
}

static void test_incr(void) {
  shdict *d = shdict_new(S("incr"));
  shd_value one = vint(1), half = vflt(0.5), v, out, s = vstr(S("12"));
  CHECK_EQ(shdict_incr(d, S("c"), &one, NULL, &out), -ENOENT);
  CHECK(absent(d, S("c")));
  shd_value init = vint(10);
  CHECK_EQ(shdict_incr(d, S("c"), &one, &init, &out), 0);
  CHECK(out.type == SHD_INT && out.u.i == 11);
  CHECK_EQ(shdict_incr(d, S("c"), &one, &init, &out), 0); /* init unused now */
  CHECK(out.type == SHD_INT && out.u.i == 12);
  shd_value m5 = vint(-5);
  CHECK_EQ(shdict_incr(d, S("c"), &m5, NULL, &out), 0);
  CHECK(out.type == SHD_INT && out.u.i == 7);
  /* a float on either side gives a float */
  CHECK_EQ(shdict_incr(d, S("c"), &half, NULL, &out), 0);
  CHECK(out.type == SHD_FLOAT && out.u.f == 7.5);
  CHECK_EQ(get(d, S("c"), &v), 0);
  CHECK(v.type == SHD_FLOAT && v.u.f == 7.5);
  CHECK_EQ(shdict_incr(d, S("c"), &one, NULL, &out), 0);
  CHECK(out.type == SHD_FLOAT && out.u.f == 8.5);
  shd_value finit = vflt(2.0);
  CHECK_EQ(shdict_incr(d, S("g"), &one, &finit, &out), 0);
  CHECK(out.type == SHD_FLOAT && out.u.f == 3.0);
  /* integers wrap as in Lua */
  shd_value max = vint(INT64_MAX);
  CHECK_EQ(shdict_set(d, S("w"), &max, 0), 0);
  CHECK_EQ(shdict_incr(d, S("w"), &one, NULL, &out), 0);
  CHECK(out.type == SHD_INT && out.u.i == INT64_MIN);
  /* not a number: a string (even a numeric one) or a boolean */
  CHECK_EQ(shdict_set(d, S("s"), &s, 0), 0);
  CHECK_EQ(shdict_incr(d, S("s"), &one, NULL, &out), -EINVAL);
  CHECK_EQ(shdict_incr(d, S("s"), &one, &init, &out), -EINVAL);
  CHECK_EQ(get(d, S("s"), &v), 0);
  CHECK(v.type == SHD_STR && v.u.s.len == 2);
  shd_value t = vbool(true);
  CHECK_EQ(shdict_set(d, S("b"), &t, 0), 0);
  CHECK_EQ(shdict_incr(d, S("b"), &one, NULL, &out), -EINVAL);
  /* n or init not a number */
  CHECK_EQ(shdict_incr(d, S("c"), &s, NULL, &out), -EINVAL);
  CHECK_EQ(shdict_incr(d, S("zz"), &one, &s, &out), -EINVAL);
  CHECK(absent(d, S("zz")));
  /* an expired counter is missing */
  CHECK_EQ(shdict_set(d, S("x"), &one, mono_now() - 1), 0);
  CHECK_EQ(shdict_incr(d, S("x"), &one, NULL, &out), -ENOENT);
  CHECK_EQ(shdict_set(d, S("x"), &one, mono_now() - 1), 0);
  CHECK_EQ(shdict_incr(d, S("x"), &one, &init, &out), 0);
  CHECK_EQ(out.u.i, 11);
  shdict_free(d);
}

static void test_binary_keys(void) {
  shdict *d = shdict_new(S("bin"));
  const char k1[] = {'a', 0, 'b'}, k2[] = {'a', 0, 'c'}, k3[] = {'a'}, k4[] = {0};
  shd_value v;
  for (int i = 0; i < 4; i++) {
    const char *k = i == 0 ? k1 : i == 1 ? k2 : i == 2 ? k3 : k4;
    size_t n = i < 2 ? 3 : 1;
    shd_value in = vint(i);
    CHECK_EQ(shdict_set(d, k, n, &in, 0), 0);
  }
  shd_value in = vint(99);
  CHECK_EQ(shdict_set(d, "", 0, &in, 0), 0); /* the empty key is a key */
  CHECK_EQ(shdict_count(d), 5);
  CHECK_EQ(get(d, k1, 3, &v), 0);
  CHECK_EQ(v.u.i, 0);
  CHECK_EQ(get(d, k2, 3, &v), 0);
  CHECK_EQ(v.u.i, 1);
  CHECK_EQ(get(d, k3, 1, &v), 0);
  CHECK_EQ(v.u.i, 2);
  CHECK_EQ(get(d, k4, 1, &v), 0);
  CHECK_EQ(v.u.i, 3);
  CHECK_EQ(get(d, "", 0, &v), 0);
  CHECK_EQ(v.u.i, 99);
  CHECK(absent(d, k1, 2)); /* "a\0" */
  shd_keys *ks;
  CHECK_EQ(shdict_keys(d, 0, &ks), 0);
  CHECK_EQ(ks->n, 5);
  int seen = 0;
  for (size_t i = 0; i < ks->n; i++) {
    if (ks->k[i].len == 3 && memcmp(ks->k[i].p, k1, 3) == 0) seen |= 1;
    if (ks->k[i].len == 3 && memcmp(ks->k[i].p, k2, 3) == 0) seen |= 2;
    if (ks->k[i].len == 1 && ks->k[i].p[0] == 'a') seen |= 4;
    if (ks->k[i].len == 1 && ks->k[i].p[0] == 0) seen |= 8;
    if (ks->k[i].len == 0) seen |= 16;
  }
  CHECK_EQ(seen, 31);
  free(ks);
  shdict_free(d);
}

static void test_ttl(void) {
  shdict *d = shdict_new(S("ttl"));
  shd_value one = vint(1), v, out;
  /* an expiry already passed: absent for every operation */
  CHECK_EQ(shdict_set(d, S("past"), &one, mono_now() - 1), 0);
  CHECK(absent(d, S("past")));
  CHECK_EQ(shdict_delete(d, S("past")), -ENOENT);
  CHECK_EQ(shdict_count(d), 0);
  /* a short ttl: present now, gone within a bounded wait */
  CHECK_EQ(shdict_set(d, S("short"), &one, mono_now() + 30 * NS_PER_MS), 0);
  CHECK_EQ(shdict_set(d, S("keep"), &one, mono_now() + 30 * NS_PER_MS), 0);
  CHECK_EQ(shdict_set(d, S("keep"), &one, 0), 0); /* set without ttl clears it */
  CHECK_EQ(shdict_set(d, S("forever"), &one, 0), 0);
  /* shdict_ttl: the time left (0: none), -ENOENT when absent */
  int64_t left = -1;
  CHECK_EQ(shdict_set(d, S("long"), &one, mono_now() + 100 * NS_PER_SEC), 0);
  CHECK_EQ(shdict_ttl(d, S("long"), &left), 0);
  CHECK(left > 99 * NS_PER_SEC && left <= 100 * NS_PER_SEC);
  CHECK_EQ(shdict_ttl(d, S("forever"), &left), 0);
  CHECK_EQ(left, 0);
  CHECK_EQ(shdict_ttl(d, S("keep"), &left), 0);
  CHECK_EQ(left, 0);
  CHECK_EQ(shdict_ttl(d, S("past"), &left), -ENOENT);
  CHECK_EQ(shdict_ttl(d, S("none"), &left), -ENOENT);
  CHECK_EQ(shdict_delete(d, S("long")), 0);
  CHECK_EQ(shdict_ttl(d, S("long"), &left), -ENOENT);
  CHECK_EQ(shdict_set(d, S("ctr"), &one, mono_now() + 30 * NS_PER_MS), 0);
  CHECK_EQ(shdict_incr(d, S("ctr"), &one, NULL, &out), 0); /* keeps the ttl */
  CHECK_EQ(out.u.i, 2);
  CHECK_EQ(get(d, S("short"), &v), 0);
  CHECK(wait_absent(d, S("short")));
  CHECK(wait_absent(d, S("ctr")));
  CHECK_EQ(shdict_ttl(d, S("ctr"), &left), -ENOENT);
  CHECK_EQ(get(d, S("keep"), &v), 0);
  CHECK_EQ(get(d, S("forever"), &v), 0);
  /* keys and count leave expired entries out without a get */
  CHECK_EQ(shdict_set(d, S("a"), &one, mono_now() + 20 * NS_PER_MS), 0);
  CHECK_EQ(shdict_count(d), 3);
  int64_t deadline = mono_now() + 5 * NS_PER_SEC;
  while (shdict_count(d) != 2 && mono_now() < deadline) sleep_ms(2);
  CHECK_EQ(shdict_count(d), 2);
  shd_keys *ks;
  CHECK_EQ(shdict_keys(d, 0, &ks), 0);
  CHECK_EQ(ks->n, 2);
  free(ks);
  shdict_free(d);
}

/* growth, the incremental sweep and bounded keys */
static void test_many(void) {
  shdict *d = shdict_new(S("many"));
  char k[32];
  shd_value v;
  enum { N = 20000 };
  for (int i = 0; i < N; i++) {
    int n = snprintf(k, sizeof k, "key%d", i);
    shd_value in = vint(i);
    CHECK_EQ(shdict_add(d, k, (size_t)n, &in, 0), 0);
  }
  CHECK_EQ(shdict_count(d), N);
  for (int i = 0; i < N; i++) {
    int n = snprintf(k, sizeof k, "key%d", i);
    CHECK_EQ(get(d, k, (size_t)n, &v), 0);
    CHECK_EQ(v.u.i, i);
  }
  shd_keys *ks;
  CHECK_EQ(shdict_keys(d, 100, &ks), 0);
  CHECK_EQ(ks->n, 100);
  for (size_t i = 0; i < ks->n; i++) CHECK(ks->k[i].len >= 4 && memcmp(ks->k[i].p, "key", 3) == 0);
  free(ks);
  CHECK_EQ(shdict_keys(d, N + 5, &ks), 0);
  CHECK_EQ(ks->n, N);
  free(ks);
  for (int i = 0; i < N; i += 2) {
    int n = snprintf(k, sizeof k, "key%d", i);
    CHECK_EQ(shdict_delete(d, k, (size_t)n), 0);
  }
  CHECK_EQ(shdict_count(d), N / 2);
  /* expired entries are swept by later writes (no access to them) */
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(k, sizeof k, "tmp%d", i);
    shd_value in = vint(i);
    CHECK_EQ(shdict_set(d, k, (size_t)n, &in, mono_now() - 1), 0);
  }
  CHECK_EQ(shdict_count(d), N / 2);
  shdict_free(d);
}

static void test_registry(void) {
  shdict *a = shdict_open(S("reg"));
  CHECK(a == shdict_open(S("reg")));
  CHECK(a != shdict_open(S("reg2")));
  CHECK(shdict_open("r\0x", 3) != shdict_open("r\0y", 3));
  CHECK(shdict_open("r\0x", 3) == shdict_open("r\0x", 3));
  CHECK(shdict_open("", 0) == shdict_open("", 0));
  shd_value in = vint(5), v;
  CHECK_EQ(shdict_set(a, S("k"), &in, 0), 0);
  CHECK_EQ(get(shdict_open(S("reg")), S("k"), &v), 0);
  CHECK_EQ(v.u.i, 5);
  shdict_registry_free();
  shdict *b = shdict_open(S("reg")); /* a new, empty registry */
  CHECK(absent(b, S("k")));
  shdict_registry_free();
}

/* ---------- concurrency ---------- */

enum { NTHREADS = 4, NINCR = 25000 };

static void *incr_worker(void *arg) {
  shdict *d = arg;
  shd_value one = vint(1), zero = vint(0), out;
  for (int i = 0; i < NINCR; i++) CHECK_EQ(shdict_incr(d, S("hits"), &one, &zero, &out), 0);
  return NULL;
}

static void test_concurrent_incr(void) {
  shdict *d = shdict_open(S("conc"));
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) CHECK_EQ(pthread_create(&t[i], NULL, incr_worker, d), 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  shd_value v;
  CHECK_EQ(get(d, S("hits"), &v), 0);
  CHECK_EQ(v.type, SHD_INT);
  CHECK_EQ(v.u.i, NTHREADS * NINCR);
  shdict_registry_free();
}

static uint32_t xorshift(uint32_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 17;
  *x ^= *x << 5;
  return *x;
}

/* every value stored for key kN is kN's number as an int, a float, or a
** string "kN:..." of some length, so a torn or crossed read is detected */
static void check_read(const char *k, int kn, const shd_value *v) {
  if (v->type == SHD_INT) CHECK(v->u.i >= kn);
  else if (v->type == SHD_FLOAT) CHECK(v->u.f >= kn);
  else {
    CHECK_EQ(v->type, SHD_STR);
    size_t kl = strlen(k);
    CHECK(v->u.s.len > kl && memcmp(v->u.s.p, k, kl) == 0 && v->u.s.p[kl] == ':');
  }
}

static void random_op(shdict *d, uint32_t *rng, char *sbuf, size_t scap) {
  int kn = (int)(xorshift(rng) % 64);
  char k[16];
  int klen = snprintf(k, sizeof k, "k%d", kn);
  unsigned op = xorshift(rng) % 10;
  int64_t expire = 0;
  if (xorshift(rng) % 3 == 0) expire = mono_now() + (int64_t)(xorshift(rng) % 3) * NS_PER_MS;
  shd_value v, out;
  if (op <= 2) {
    int rc = shdict_get(d, k, (size_t)klen, &v, sbuf, scap);
    CHECK(rc == 0 || rc == -ENOENT || rc == -ENOBUFS);
    if (rc == 0) check_read(k, kn, &v);
  } else if (op <= 5) {
    size_t len = (size_t)klen + 1 + xorshift(rng) % 300; /* some exceed the buffer */
    char *s = malloc(len);
    memcpy(s, k, (size_t)klen);
    memset(s + klen, ':', len - (size_t)klen);
    shd_value in = xorshift(rng) % 2 ? vstr(s, len) : vint(kn);
    int rc = op == 5 ? shdict_add(d, k, (size_t)klen, &in, expire)
                     : shdict_set(d, k, (size_t)klen, &in, expire);
    CHECK(rc == 0 || (op == 5 && rc == -EEXIST));
    free(s);
  } else if (op == 6) {
    shd_value one = vint(1), init = vflt(kn);
    int rc = shdict_incr(d, k, (size_t)klen, &one, &init, &out);
    CHECK(rc == 0 || rc == -EINVAL);
  } else if (op == 7) {
    int rc = shdict_delete(d, k, (size_t)klen);
    CHECK(rc == 0 || rc == -ENOENT);
  } else if (op == 8) {
    shd_keys *ks;
    CHECK_EQ(shdict_keys(d, xorshift(rng) % 8, &ks), 0);
    CHECK(ks->n <= 64);
    for (size_t i = 0; i < ks->n; i++) CHECK(ks->k[i].len >= 2 && ks->k[i].p[0] == 'k');
    free(ks);
  } else {
    CHECK(shdict_count(d) <= 64);
  }
}

static void *random_worker(void *arg) {
  shdict *d = shdict_open(S("random"));
  uint32_t rng = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
  char sbuf[128];
  for (int i = 0; i < 40000; i++) random_op(d, &rng, sbuf, sizeof sbuf);
  return NULL;
}

static void test_concurrent_random(void) {
  pthread_t t[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    CHECK_EQ(pthread_create(&t[i], NULL, random_worker, (void *)(uintptr_t)(i + 1)), 0);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  shdict *d = shdict_open(S("random"));
  shd_keys *ks;
  CHECK_EQ(shdict_keys(d, 0, &ks), 0);
  CHECK(ks->n <= 64);
  free(ks);
  shdict_registry_free();
}

static void *open_worker(void *arg) {
  shdict **out = arg;
  for (int i = 0; i < 16; i++) {
    char name[16];
    int n = snprintf(name, sizeof name, "n%d", i);
    out[i] = shdict_open(name, (size_t)n);
  }
  return NULL;
}

static void test_concurrent_open(void) {
  enum { T = 8 };
  shdict *got[T][16];
  pthread_t t[T];
  for (int i = 0; i < T; i++) CHECK_EQ(pthread_create(&t[i], NULL, open_worker, got[i]), 0);
  for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
  for (int i = 1; i < T; i++)
    for (int j = 0; j < 16; j++) CHECK(got[i][j] == got[0][j]);
  for (int j = 1; j < 16; j++) CHECK(got[0][j] != got[0][0]);
  shdict_registry_free();
}

int main(void) {
  test_types();
  test_add();
  test_incr();
  test_binary_keys();
  test_ttl();
  test_many();
  test_registry();
  test_concurrent_incr();
  test_concurrent_random();
  test_concurrent_open();
  CHECK_DONE();
}
