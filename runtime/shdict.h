/*
** shdict.h — shared dictionaries (OpenResty: ngx.shared.DICT): a
** process-wide registry of named key/value stores usable from every VM and
** every thread. Pure C, no Lua: the binding (bindings/lshared.c) converts.
**
** Invariants:
**  - Any thread may call any function here except shdict_free and
**    shdict_registry_free, which need every other user gone.
**  - A dict is a chained hash table under one pthread mutex; every operation
**    takes it once, for a bounded time (no callbacks, no Lua, no blocking
**    calls inside; keys() and count() are O(n)).
**  - Keys are byte strings (NULs allowed). Values are tagged and copied in
**    and out: the dict never points into caller memory and callers never
**    point into the dict. A string value replacing one of the same length is
**    copied over it (no allocation).
**  - Each entry has an expiry (absolute mono_now() ns, 0 = none). An entry
**    whose expiry is <= now is absent for every operation; it is freed when
**    an operation meets it, by the incremental sweep that every write
**    advances (a few buckets), and by a full sweep before the table grows.
**  - Hashing is SipHash-1-3 with a per-process random key (key flooding).
**  - The registry maps a name to one dict for the life of the process (or
**    until shdict_registry_free): the same name gives the same pointer in
**    every thread. Dicts are never freed while the registry lives, so a
**    pointer from shdict_open stays valid without reference counting.
**
** Errors are 0 / -errno: -ENOENT (no live entry), -EEXIST (add: a live
** entry exists), -EINVAL (incr: the stored value is not a number, or n /
** init is not a number), -ENOBUFS (get: the string is longer than the
** buffer), -ENOMEM (allocation of a caller-sized object failed; the dict is
** unchanged).
*/
#ifndef GLR_SHDICT_H
#define GLR_SHDICT_H

#include "common.h"

typedef struct shdict shdict;

enum shd_type { SHD_NIL = 0, SHD_BOOL, SHD_INT, SHD_FLOAT, SHD_STR };

/* A value going in or out. For SHD_STR, u.s points to caller memory (in:
** copied by the dict; out: the caller's buffer). */
typedef struct shd_value {
  int type; /* enum shd_type */
  union {
    bool b;
    int64_t i;
    double f;
    struct {
      const char *p;
      size_t len;
    } s;
  } u;
} shd_value;

/* The result of shdict_keys: one malloc'd block, release with free(). */
typedef struct shd_keys {
  size_t n;
  struct {
    const char *p;
    size_t len;
  } k[]; /* the key bytes follow the array, inside the same block */
} shd_keys;

/* ---- registry ---- */

/* shdict_open — the dict called name (created empty on first use). */
GLR_INTERNAL shdict *shdict_open(const char *name, size_t len);
/* shdict_registry_free — frees every registered dict; the next open starts
** a new registry. Only when no other thread can use a dict. */
GLR_INTERNAL void shdict_registry_free(void);

/* ---- one dict ---- */

/* shdict_new / shdict_free — a dict outside the registry (tests). */
GLR_INTERNAL shdict *shdict_new(const char *name, size_t len);
GLR_INTERNAL void shdict_free(shdict *d);
GLR_INTERNAL const char *shdict_name(const shdict *d, size_t *len);

/* shdict_get — copies the live value of k into *out; a string's bytes go to
** buf (cap bytes) and out->u.s.p = buf. -ENOBUFS: out->u.s.len is the size
** needed and nothing was copied (the value may change before a retry). */
GLR_INTERNAL int shdict_get(shdict *d, const char *k, size_t klen, shd_value *out, char *buf,
                            size_t cap);
/* shdict_set — stores v with expiry `expire` (0 = none), replacing any
** entry; v NULL or SHD_NIL deletes. */
GLR_INTERNAL int shdict_set(shdict *d, const char *k, size_t klen, const shd_value *v,
                            int64_t expire);
/* shdict_add — shdict_set unless a live entry exists (-EEXIST). */
GLR_INTERNAL int shdict_add(shdict *d, const char *k, size_t klen, const shd_value *v,
                            int64_t expire);
/* shdict_incr — adds n to a numeric value and stores the sum in *out
** (integer + integer wraps in two's complement; a float on either side
** gives a float); the entry keeps its expiry. A missing key is created
** without expiry as init + n when init is given, else -ENOENT. */
GLR_INTERNAL int shdict_incr(shdict *d, const char *k, size_t klen, const shd_value *n,
                             const shd_value *init, shd_value *out);
/* shdict_ttl — the time left before k's live entry expires, in ns, in
** *left (0: the entry never expires); -ENOENT when there is none. */
GLR_INTERNAL int shdict_ttl(shdict *d, const char *k, size_t klen, int64_t *left);
/* shdict_delete — 0 if a live entry was removed, -ENOENT otherwise. */
GLR_INTERNAL int shdict_delete(shdict *d, const char *k, size_t klen);
/* shdict_keys — a snapshot of at most max live keys (0 = all), in no
** particular order, in *out (free() it). */
GLR_INTERNAL int shdict_keys(shdict *d, size_t max, shd_keys **out);

#endif
