/*
** memlimit.h — the bytes every VM's allocator holds, counted once for the
** process, and the limit GOLUA_MEMLIMIT puts on them (Go: GOMEMLIMIT,
** runtime/mgcpacer.go's memoryLimit).
**
** Invariants:
**  - The count is process-wide, as the heap it measures: one atomic
**    (memlimit_inuse), added to by every VM's allocator in batches, so it
**    lags the truth by less than MEMLIMIT_BATCH bytes per VM. Only Lua's
**    memory is counted; the runtime's own C allocations are not Lua's and
**    are neither counted nor limited.
**  - memlimit_setup runs on the main thread before the first VM exists
**    (rt_new) and before any other thread starts; the limit and the hook
**    are const from then on, read by any thread.
**  - A memvm is one VM's allocator state, the `ud` of memlimit_alloc. Its
**    fields are its VM's: touched only by the M holding that VM's P, as
**    every use of the VM is (owner M only). Freeing and shrinking never
**    fail. Growing fails only past the limit and only while a goroutine
**    runs (*curg, the P's p->curg, also right after a hand-off): Lua then
**    collects that VM fully, retries, and raises "not enough memory" in
**    the goroutine that asked. The scheduler's own Lua work outside any
**    goroutine (threads for new goroutines, timer callbacks, portable
**    starts) is never refused, so the runtime keeps running.
**  - The soft limit (MEMLIMIT_SOFT_PCT of the limit): the allocation whose
**    batch crosses the trigger calls the hook once, on whatever M it runs;
**    frees never call it (the VMs of a runtime being freed close through
**    it); the hook may only set flags and wake Ps (sched.c: every P's gc_req,
**    then each P collects its own VM at its next round; no thread ever
**    collects another's VM). A P that collected calls memlimit_collected,
**    which re-arms the trigger halfway between the count and the limit.
**  - With no limit: a plain add and compare per allocation, one relaxed
**    atomic add per MEMLIMIT_BATCH bytes, nothing else.
**  - Allocation-failure injection (GOLUA_ALLOCFAIL, memlimit_failsetup,
**    const after rt_new like the limit): only growths that the limit
**    could refuse are refused (while a goroutine runs), the Nth of them
**    counted over the process (one atomic), or each with a probability from
**    the VM's seeded stream (chaos.h). A refused growth also refuses the
**    VM's next one (v->failnext), the retry Lua makes after its emergency
**    collection, so Lua really raises "not enough memory"; failing one
**    call alone would only test the collector. Off: one predictable branch.
**  - Small blocks (up to MEMLIMIT_SMALL_MAX bytes) freed by a VM are kept
**    in its memvm's lists, one per size class, up to MEMLIMIT_CACHE_MAX
**    bytes, and handed out again by its next allocations of that class:
**    a request's strings and tables cost a list push and pop instead of
**    glibc's malloc and free (bins, consolidation: ~300 instructions a
**    pair). The classes are glibc's own chunk sizes (24, 40, ..., 248
**    usable bytes), so no block is bigger than malloc would make it. A
**    block joins a list only if malloc_usable_size says it holds its
**    class's bytes: blocks made before memlimit_alloc was the VM's
**    allocator (luaL_newstate's), or by an allocator that sizes blocks
**    exactly (valgrind's, TSan's), are freed. A block only ever serves the VM
**    that freed it (owner M only, as the rest of memvm). The count is
**    Lua's bytes: cached blocks are free memory, not counted (as glibc's
**    own free lists are not). memlimit_drain gives them back: after
**    lua_close, and at every full collection sched.c makes. Under
**    AddressSanitizer there are no lists (MEMLIMIT_CACHE_MAX 0), so it
**    still sees every use after free.
*/
#ifndef GLR_MEMLIMIT_H
#define GLR_MEMLIMIT_H

#include "chaos.h"
#include "common.h"

#define MEMLIMIT_BATCH (64 * 1024)  /* bytes a VM counts before publishing */
#define MEMLIMIT_SOFT_PCT 90        /* full GCs are asked for past this % */
#define MEMLIMIT_CLASSES 15         /* small-block classes: 24 + 16k bytes */
#define MEMLIMIT_SMALL_MAX (24 + 16 * (MEMLIMIT_CLASSES - 1)) /* 248 */
#if defined(__SANITIZE_ADDRESS__)
#define MEMLIMIT_CACHE_MAX 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMLIMIT_CACHE_MAX 0
#endif
#endif
#ifndef MEMLIMIT_CACHE_MAX
#define MEMLIMIT_CACHE_MAX (256 * 1024) /* free bytes a VM keeps for reuse */
#endif

struct G;
typedef struct memvm {
  int64_t delta;          /* owner M only: bytes not yet added to the count */
  int64_t flushed;        /* owner M only: bytes this VM added to the count */
  struct G *const *curg;  /* const: the P's running goroutine (p->curg): when
                          ** not NULL, growth past the limit fails */
  bool failnext;          /* owner M only: refuse the next growth (allocfail) */
  chaos_rng failrng;      /* owner M only: allocfail's random stream */
  int64_t cached;         /* owner M only: bytes in the lists below */
  void *free_small[MEMLIMIT_CLASSES]; /* owner M only: freed blocks of each
                          ** class, linked through their first word */
} memvm;

/* memlimit_hook — called when the count crosses the soft limit (any M). */
typedef void (*memlimit_hook)(void *ud);

/* memlimit_setup — limit in bytes (0: none); hook(ud) at the soft limit. */
GLR_INTERNAL void memlimit_setup(int64_t limit, memlimit_hook hook, void *ud);
/* memlimit_failsetup — GOLUA_ALLOCFAIL: refuse the nth growth (0: not by
** count), or each with probability ppm (0: not at random) from streams of
** seed. Main thread, before the first VM (as memlimit_setup). */
GLR_INTERNAL void memlimit_failsetup(int64_t nth, uint64_t seed, uint32_t ppm);
/* memlimit_vm_init — v's allocator state for VM number id, curg as memvm's */
GLR_INTERNAL void memlimit_vm_init(memvm *v, struct G *const *curg, int id);
/* memlimit_alloc — a lua_Alloc over malloc; ud is the VM's memvm. */
GLR_INTERNAL void *memlimit_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* memlimit_adopt — count bytes a VM got before memlimit_alloc was its
** allocator (luaL_newstate's own; they are freed through memlimit_alloc). */
GLR_INTERNAL void memlimit_adopt(memvm *v, int64_t bytes);
/* memlimit_drain — free the small blocks v keeps for reuse (owner M; also
** after lua_close) */
GLR_INTERNAL void memlimit_drain(memvm *v);
/* memlimit_flush — publish v's pending bytes (owner M). */
GLR_INTERNAL void memlimit_flush(memvm *v);
/* memlimit_vm_bytes — the bytes v's VM holds (owner M): what
** lua_gc(LUA_GCCOUNT/COUNTB) tells, without a call into Lua */
static inline int64_t memlimit_vm_bytes(const memvm *v) { return v->flushed + v->delta; }
/* memlimit_collected — a VM finished a full GC: re-arm the soft trigger. */
GLR_INTERNAL void memlimit_collected(void);
/* memlimit_inuse — bytes held by every VM (atomic read, any thread). */
GLR_INTERNAL int64_t memlimit_inuse(void);
/* memlimit_limit — the limit in bytes, 0 when there is none. */
GLR_INTERNAL int64_t memlimit_limit(void);

#endif
