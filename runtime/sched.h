/*
** sched.h — G/M/P scheduler (Go: runtime2.go, proc.go).
**
** G  a goroutine: a Lua thread of one VM plus this record. A G never leaves
**    its VM, so it only ever runs on the P that owns that VM.
** P  the right to run one VM: its lua_State, local run queue, inbox, timer
**    heap and netpoller (epoll + eventfd).
** M  an OS thread. An M runs goroutines only while it holds a P. M0 (the
**    process's main thread) starts with P0, M1..Mn-1 with P1..Pn-1; a P
**    passes to another M during a blocking call (handoff.h), so Ms and Ps
**    are not tied.
**
** Ownership: every field of a P and of its Gs is touched only by the M that
** holds that P ("owner M only"; which M that is changes only under the
** hand-off protocol of handoff.h, whose mutexes order the accesses), except those tagged atomic or guarded. Other
** threads reach a P only through its inbox (sched_ready_remote) and
** netpoll_break. A G's status follows gstatus below; every change goes
** through g_cas_status (sched.c), which aborts on an illegal transition. A
** P's status (p->pstatus) is handoff.h's, changed only by p_cas_status /
** p_set_status there.
**
** Progress accounting (deadlock detection and exit): rt->n_progress counts
** Gs that are runnable, running, or parked on something the world can wake
** (I/O, timers, other threads), plus armed go.after timers. A G parked with
** PARK_SYNC (a channel or go.wait with no timeout) does not count. Wakers
** increment before the waker itself parks, so 0 is stable: nothing can ever
** run again. Then: main finished -> exit 0; else deadlock -> report, exit 2.
**
** A P's own G changes (start +1, exit -1, a PARK_SYNC park -1 and its
** ready +1) are batched while the P holds its progress token
** (p->ptoken): taking it adds 1 to n_progress, and the changes collect in
** p->plocal; releasing it, before the P checks for quiescence and sleeps
** (or parks a G on its M), adds plocal - 1. So n_progress is at least 1
** while any P holds its token, and exact when none does: it reads 0 only
** when it is 0. Without the token (a finalizer run by an idle P's GC) the
** changes go straight to n_progress. Saves two locked adds per goroutine
** switch and per spawn (sched.c, progress_add).
*/
#ifndef GLR_SCHED_H
#define GLR_SCHED_H

#include <pthread.h>
#include <signal.h>

#include "chan.h"
#include "chaos.h"
#include "common.h"
#include "config.h"
#include "memlimit.h"
#include "pgq.h"
#include "runq.h"
#include "timer.h"

/* a P that runs goroutines polls its fds at least this often (Go: sysmon's
** forced netpoll every 10 ms) */
#define FORCED_POLL_NS (10 * NS_PER_MS)

struct lua_State;
typedef struct G G;
typedef struct P P;
typedef struct M M;
typedef struct rt rt;

/* vmtag — what a lua_State's extra space points to: the P for the VM's
** main thread and user coroutines, the G for a goroutine's own thread. */
enum { TAG_P = 1, TAG_G = 2 };
typedef struct vmtag {
  uint8_t kind;
  P *p;
} vmtag;

/* gstatus — Go: _Gidle.._Gdead. */
typedef enum gstatus {
  G_IDLE = 0,  /* in the free list; no Lua code attached */
  G_RUNNABLE,  /* in its P's run queue (or inbox); owned by that queue */
  G_RUNNING,   /* executing on its P's M; p->curg == g */
  G_WAITING,   /* parked; owned by whatever will ready it */
  G_DEAD       /* finished; about to be recycled or freed */
} gstatus;

enum { Y_NONE = 0, Y_PARK, Y_GOSCHED, Y_PREEMPT };
enum parkkind { PARK_WORLD = 0, PARK_SYNC = 1 };
/* wake codes left for the parked G by its waker */
enum { WAKE_NONE = 0, WAKE_READY, WAKE_TIMEOUT, WAKE_CLOSED, WAKE_CANCELLED };
/* what a parked G waits on, for a group's cancel (group.c, group_wake):
** set by the park site right before sched_park, reset when the G runs */
enum waitkind {
  WK_NONE = 0, /* not cancellable while parked (runs to its own wake-up) */
  WK_SLEEP,    /* its own timer only */
  WK_CHAN,     /* g->sg on a local channel (wobj: unused) */
  WK_SEL,      /* a selstate (wobj) whose claim wins the wake-up */
  WK_IO_R,     /* a pollDesc's read slot (wobj) */
  WK_IO_W,     /* a pollDesc's write slot (wobj) */
  WK_CALL      /* parked with glr_park in a binding's queue: wobj is a
               ** wcancel whose detach unlinks it (true: it was queued) */
};
typedef struct wcancel {
  bool (*detach)(struct wcancel *self);
} wcancel;
struct ggroup;

typedef bool (*unlockf)(G *g, void *arg);

/* gcold — the part of a G that only some goroutines use: their own timer,
** the channel / wait sudog and selstate, the coroutine chain's bits, the
** group's member links. Made at the first use (gcold_of, owner M only),
** kept while the G is recycled, freed with it, so a goroutine that only
** does I/O (an idle connection's) carries none of it. Every field owner
** M only, except as chan.h says of sg and gsel. */
typedef struct gcold {
  timer sleept;          /* sleep and go.wait's timeout */
  selstate *sel;         /* claimed by the timer on timeout */
  selstate gsel;         /* storage for sel (go.wait) */
  sudog sg;              /* single channel op / go.wait waiter */
  uint64_t chainok[4];   /* replacement coroutine lib: resume chain */
  G *gnext, *gprev;      /* the group's member list (group.h) */
} gcold;

struct G {
  vmtag tag;             /* const while alive */
  uint64_t id;           /* set at each start */
  struct lua_State *L;   /* the goroutine's thread; const while alive */
  unlockf unlock;        /* run after the G is off its stack (gopark) */
  void *unlockarg;
  const char *waitreason;
  int64_t waitsince;     /* when it parked, to within a poll period (the P's
                         ** lastpoll: no clock read on the park path) */
  struct lua_State *parkL; /* the thread that parked last (g->L or a user
                           ** coroutine inside it): a waker on this P may
                           ** push a value onto it (lchan.c's hand-off) */
  G *allnext, *allprev;  /* P's list of live goroutines */
  G *link;               /* free list, inbox */
  struct ggroup *grp;    /* owner M only: the group it belongs to (a ref), or
                         ** NULL (cancellation groups, group.h) */
  void *waitobj;         /* owner M only: what waitkind names */
  gcold *cold;           /* owner M only: NULL until gcold_of needs it */
  void *endarg;          /* owner M only: what rt->g_end needs besides the
                         ** thread (gohandle.c: the handle's block) */
  void *oplocks;         /* owner M only: the newest conn operation lock the
                         ** G holds, or NULL (bindings/conn.c's list, opaque
                         ** here); NULL whenever the G ends (rt->g_oplocks) */
  M *onm;                /* owner M only (the P's holder): the M this G is
                         ** parked on (sched_park where L cannot yield: the
                         ** G sleeps on that M, not in a run queue), or NULL */
  /* (the 4-byte fields, then the bytes: no hole before a pointer) */
  uint32_t gen;          /* bumped at each recycle */
  int ref;               /* registry ref keeping L alive */
  int nargs;             /* values to pass to the next lua_resume */
  int waitfd;            /* an "IO wait": the fd (iowait.c) */
  int chaindepth;        /* replacement coroutine lib: resume chain depth
                         ** (its bits in cold->chainok) */
  _Atomic int parktoken; /* glr_park/glr_ready: PT_* */
  _Atomic int blockfd;   /* atomic: the eventfd of the M this G blocks on
                         ** (a non-yieldable wait under hand-off), or -1 */
  /* small enums in a byte each (a G is made per goroutine) */
  uint8_t status;        /* gstatus; owner M only, via g_cas_status */
  uint8_t yieldkind;     /* Y_*: why the last yield happened */
  uint8_t waitmode;      /* an "IO wait": PD_MODE_R/W (iowait.c) */
  uint8_t parkkind;      /* PARK_* */
  uint8_t wake;          /* WAKE_* left by the waker */
  uint8_t waitkind;      /* owner M only: WK_*, while parked */
  bool parked_sync;      /* not counted in n_progress while parked */
  bool escaped;          /* identity reached Lua: never recycle */
  bool ismain;
  uint8_t direct;        /* 0: the body runs under an entry function (the
                         ** main goroutine); else it is the thread's first
                         ** frame and rt->g_end finishes the G once
                         ** lua_resume returns (the value says how: the
                         ** binding's own; set before sched_start) */
};

/* gcold_new — make g's cold part (gcold_of's slow path) */
GLR_INTERNAL gcold *gcold_new(G *g);
/* gcold_of — g's cold part, made at the first call (owner M only) */
static inline gcold *gcold_of(G *g) { return GLR_LIKELY(g->cold != NULL) ? g->cold : gcold_new(g); }

/* glr_park / glr_ready handshake (any thread may ready) */
enum { PT_NONE = 0, PT_PARKED = 1, PT_TOKEN = 2 };

typedef struct closer closer; /* signal.h */

/* pstats — a P's counters; owner M only (published in P.pub). */
typedef struct pstats {
  uint64_t spawned;      /* goroutines started (sched_start) */
  uint64_t created;      /* G records created (Lua threads) */
  uint64_t steals;       /* portable goroutines stolen from another P */
  uint64_t preemptions;  /* asynchronous preemptions (preempt.c) */
  uint64_t handoffs;     /* blocking calls whose P was retaken (handoff.c) */
  /* conns (bindings/conn.c, lnet.c): kept per P, so no shared atomic on
  ** the hot path; a conn moved to another VM counts as closed here and
  ** opened there */
  uint64_t conns_opened;   /* stream conns made here: dialled, accepted, wrapped, moved in */
  uint64_t conns_closed;   /* stream conns closed here or moved away */
  uint64_t accepted;       /* conns accepted by listeners of this P */
  uint64_t bytes_read;     /* bytes delivered to Lua by stream reads (after TLS) */
  uint64_t bytes_written;  /* bytes accepted by stream writes (before TLS) */
  uint64_t handshakes;     /* transport (TLS) handshakes completed */
  uint64_t handshake_failures; /* transport (TLS) handshakes failed */
} pstats;

/* ppub — a P's figures as last published by sched_publish, for other
** threads (sysmon_stats, handoff's has_work); every field atomic. */
typedef struct ppub {
  _Atomic int goroutines;  /* p->ngoroutines */
  _Atomic int runq;        /* runq_len(&p->q) */
  _Atomic uint64_t spawned, created, steals, preemptions, handoffs; /* p->st */
  _Atomic uint64_t conns_opened, conns_closed, accepted, bytes_read, bytes_written,
      handshakes, handshake_failures; /* p->st */
  _Atomic int64_t lua_bytes;  /* the VM's Lua bytes (memlimit_vm_bytes), stored by the P */
  _Atomic int timers;         /* timers armed on the P's heap */
} ppub;

struct P {
  vmtag tag;              /* const */
  int id;                 /* const */
  rt *rt;                 /* const */
  M *_Atomic m;           /* atomic: the M holding this P (handoff.h) */
  _Atomic int pstatus;    /* atomic: P_RUNNING / P_SYSCALL / P_FREE */
  _Atomic int64_t syscall_when; /* atomic: when the holder entered a blocking call */
  pthread_mutex_t hlock;  /* hand-off: guards hwaiters and grants */
  M *hwaiters;            /* guarded by hlock: Ms waiting for this P */
  _Atomic int nhwaiters;  /* atomic: length of hwaiters */
  struct lua_State *L;    /* the VM; owner M only */
  memvm mem;              /* owner M only: the VM's allocator state (memlimit.h) */
  _Atomic bool gc_req;    /* atomic: memory near GOLUA_MEMLIMIT; set by any M
                          ** (memlimit's hook), cleared by the owner M when it
                          ** collects its VM fully at its next round */
  int64_t gc_after_kb;    /* owner M only: VM size (KiB) after its last full GC */
  uint64_t gc_exec_seq;   /* owner M only: exec_seq at its last full GC */
  int64_t gc_idle_kb;     /* owner M only: size past which an idle P collects */
  int64_t gc_idle_at;     /* owner M only: from when an idle P whose VM ran
                          ** goroutines since collects (sched.c, idle_collect) */
  int64_t gc_wake_at;     /* owner M only: an idle P wakes then to collect */
  int64_t inbox_at;       /* owner M only: when the inbox last held a wake-up
                          ** (another thread readied one of its Gs); a P
                          ** about to sleep spins briefly if that is recent */
  runq q;                 /* owner M only */
  timerheap timers;       /* owner M only */
  G *curg;                /* owner M only */
  G *allg;                /* owner M only: live goroutines */
  int ngoroutines;        /* owner M only */
  _Atomic int npollwait;  /* atomic: Gs parked on a pollDesc */
  G *gfree;               /* owner M only: recyclable Gs */
  int nparked;            /* owner M only: coroutines parked through (lcoro.c) */
  int ngfree;
  uint64_t schedtick;
  bool ptoken;            /* owner M only: holds 1 in rt->n_progress (header) */
  int64_t plocal;         /* owner M only: G changes not yet in rt->n_progress */
  bool wake_next;         /* owner M: fd wake-ups go to runnext when it is
                          ** free (set during a busy P's forced poll, so a
                          ** reader does not wait behind every CPU-bound
                          ** goroutine's slice) */
  _Atomic int64_t lastpoll; /* atomic: set by the owner M at each poll, read by sysmon */
  _Atomic bool poll_due;    /* atomic: set by sysmon (not polled for FORCED_POLL_NS while
                            ** running); cleared by the owner M when it polls */
  /* netpoller */
  int epfd, evfd;         /* const after init */
  _Atomic bool sleeping;  /* atomic: blocked (or about to) in epoll_wait */
  void *mockready;        /* owner M only: synthetic events (fault injection) */
  chaos_rng chaos;        /* owner M only: GOLUA_CHAOS's faults (sockio.c) */
  size_t nmockready, capmockready;
  /* inbox: cross-thread wake-ups */
  pthread_mutex_t inbox_lock;
  G *inbox_head, *inbox_tail; /* guarded by inbox_lock */
  _Atomic int inbox_n;        /* atomic: approximate length */
  _Atomic bool shutdown_req;  /* atomic: close listeners */
  _Atomic bool dump_req;      /* atomic: SIGQUIT, print goroutines */
  _Atomic uint64_t sig_sub;   /* atomic: signals this VM subscribed (bit
                              ** signo; written by the owner M, signal.c) */
  _Atomic uint64_t sig_pend;  /* atomic: subscribed signals arrived, not yet
                              ** delivered (set by handlers, taken by owner M) */
  _Atomic bool interrupt_req; /* atomic: SIGINT asks the running Lua code to
                              ** raise "interrupted!" (set by the handler,
                              ** taken by preempt.c's hook) */
  closer *closers;        /* owner M only (signal.c) */
  char *scratch;          /* owner M only: I/O scratch buffer */
  size_t scratch_len;
  void *spare;            /* owner M only: one freed block of SCHED_SPARE
                          ** bytes kept for reuse (sched_spare_take/put) */
  pgq pq;                 /* portable goroutines queued here (any thread) */
  pgq pinq;               /* portable goroutines for this P only: never stolen */
  uint32_t rnd;           /* owner M only: steal order */
  pstats st;              /* owner M only */
  ppub pub;               /* atomic fields: st and lengths, published */
  /* preemption (preempt.c) */
  struct lua_State *_Atomic curL; /* atomic: innermost running coroutine */
  _Atomic bool running;   /* atomic: a goroutine is executing */
  _Atomic uint64_t exec_seq; /* atomic: bumped at every execute */
  _Atomic int64_t next_timer_pub; /* atomic: earliest timer, 0 if none */
  uint64_t seen_seq;      /* sysmon only */
  int64_t seen_when;      /* sysmon only */
  uint64_t starve_seq;    /* sysmon only: exec_seq at its last exhaustion check */
  /* owner M and its own SIGURG handler (preempt.c has the protocol) */
  struct lua_State *hooked_L;  /* the hookless thread preempt_hook is on */
  struct lua_State *req_L;     /* hooked thread asked to yield at its next line/count event */
  struct lua_State *tmpcount_L; /* hooked thread given a count-1 mask for that */
  struct lua_State *entry_L;   /* its last user event was a call (next: pc 0) */
  volatile sig_atomic_t hook_busy; /* a hook is being set: the handler stays out */
  _Atomic bool preempt_want; /* atomic: sysmon asks the SIGURG hook to preempt */
  /* profiler (prof.h) */
  const char *_Atomic sample_want; /* atomic: the sampler asks the SIGURG hook
                                   ** for a sample ("" or a C label); NULL: no */
  const char *_Atomic cwhat;  /* atomic: set by the owner M around C work
                              ** (OpenSSL), read by the sampler */
  pthread_mutex_t prof_lock;  /* guards the sample table below */
  struct prof_entry **prof_buckets; /* guarded by prof_lock */
  size_t prof_nbuckets, prof_n;     /* guarded by prof_lock */
};

/* M — an OS thread (handoff.h has the protocol). */
struct M {
  pthread_t thread;       /* const once started */
  rt *rt;                 /* const */
  int id;                 /* const */
  bool started;           /* guarded by rt->mlock */
  bool ism0;              /* const: the main thread (never idles in the pool) */
  P *startp;              /* the P a new thread starts with */
  P *nextp;               /* guarded by rt->mlock: P handed to an idle M */
  bool granted;           /* guarded by the awaited P's hlock */
  pthread_cond_t cond;    /* this M sleeps here (idle, or waiting for a P) */
  M *next;                /* idle list (rt->mlock) or hwaiters (p->hlock) */
  M *allnext;             /* guarded by rt->mlock: every pool M */
  int sys_depth;          /* this M only: nesting of blocking calls */
  P *sys_p;               /* this M only: the P it left for the call */
  G *sys_g;               /* this M only: the G in the blocking call */
  struct lua_State *sys_L; /* this M only: its innermost running coroutine */
  const char *sys_what;   /* this M: what the blocking call waits for ("IO
                          ** wait", "sleep", "C call"); others read it only
                          ** while holding sys_p (the P's CAS orders it) */
  _Atomic int sys_state;  /* atomic: M_SYS_* (handoff.h) */
  _Atomic int64_t sys_until; /* atomic: when the blocking call ends by itself
                             ** (its deadline), DEADLINE_NONE if unknown */
  int wakefd;             /* this M only: eventfd for non-yieldable waits, or -1
                          ** (created by this M; others read it only while
                          ** it sleeps parked with a G, see onm_woken) */
  _Atomic bool onm_woken; /* atomic: the G parked on this M (g->onm) was
                          ** readied; set by the P's holder (sched_ready),
                          ** cleared by this M before it parks */
};

enum stop_reason { STOP_NONE = 0, STOP_EXIT, STOP_DEADLOCK };

typedef void (*open_vm_fn)(struct lua_State *L, P *p, void *ud);
/* start_portable_fn — turn a portable record into a goroutine of p's VM
** (called on p's M, outside any goroutine) */
typedef void (*start_portable_fn)(P *p, portable *w);

struct rt {
  rt_config cfg;               /* const: settings (config.h) */
  int nprocs;                  /* const */
  P **ps;                      /* const array */
  M *ms;                       /* const array */
  open_vm_fn open_vm;          /* const */
  start_portable_fn start_portable; /* const after init (bindings) */
  pgq global;                  /* portable goroutines not yet on a P */
  void *open_vm_ud;            /* const */
  _Atomic int64_t n_progress;  /* atomic: see header comment */
  _Atomic bool main_done;      /* atomic */
  _Atomic int stopping;        /* atomic: a stop_reason */
  _Atomic int exit_code;       /* atomic: first stop wins */
  _Atomic bool close_vms;      /* atomic: lua_close the VMs at exit */
  _Atomic uint64_t next_goid;  /* atomic */
  _Atomic int signal_pending;  /* atomic: set by the signal handler */
  _Atomic int nsignals;        /* atomic: SIGINT/SIGTERM received */
  _Atomic int64_t signal_when; /* atomic: mono time of the first one, 0 before */
  _Atomic bool grace_done;     /* atomic: the grace period's end was acted on */
  _Atomic bool shutting_down;  /* atomic: the graceful shutdown began (signal_handle) */
  _Atomic bool run_done;       /* atomic: rt_run's M0 is past its wait for the Ms */
  _Atomic int64_t stop_when;   /* atomic: mono time of the stop, 0 before */
  _Atomic int sig_nsub[65];    /* atomic: VMs subscribed to each signal (signal.c) */
  _Atomic int nclosers;        /* atomic: live closers (listeners) over every P */
  _Atomic int ninterrupts;     /* atomic: "interrupted!" errors raised */
  void (*sig_deliver)(P *p, uint64_t mask); /* const after init (bindings):
                                  send arrived signals to p's subscribers */
  int (*g_end)(P *p, G *g, int status); /* const after init (bindings,
                                  gohandle.c): ends a direct G whose body
                                  returned or raised (status: lua_resume's);
                                  LUA_OK when its thread can be recycled */
  void (*g_oplocks)(P *p, G *g); /* const after init (bindings, conn.c):
                                  releases the conn operation locks g still
                                  holds (an error unwound past their ends);
                                  run as g ends, when g->oplocks is set */
  int64_t starve_since;        /* sysmon only: since when no M could be had
                                  while work waited (handoff_starved) */
  pthread_mutex_t dump_lock;   /* serialises deadlock/goroutine dumps */
  timer grace_timer;           /* shutdown grace (signal.c): armed once, on the
                                  heap of the P that took the signal; that P's
                                  M only */
  /* Ms (handoff.h) */
  pthread_mutex_t mlock;       /* guards the fields below and every M's nextp */
  pthread_cond_t mcond;        /* guarded by mlock: nlive reached 0 */
  M *midle;                    /* guarded by mlock: idle pool Ms */
  M *mall;                     /* guarded by mlock: every pool-allocated M */
  int nm;                      /* guarded by mlock: Ms that exist */
  int maxm;                    /* const: cap on Ms (cfg.maxthreads, >= nprocs) */
  int nlive;                   /* guarded by mlock: threads other than M0 that
                                  are not in a blocking call and not exited */
  bool ms_done;                /* guarded by mlock: rt_run stopped waiting */
  int nblocked;                /* guarded by mlock: Ms in a blocking call */
  bool m0_blocked;             /* guarded by mlock: M0 is in a blocking call */
  _Atomic bool sysmon_deep;    /* atomic: sysmon sleeps on sysmon_cond */
  /* sysmon (sysmon.h) */
  pthread_t sysmon;            /* const once started */
  bool sysmon_started;         /* rt_run's thread only */
  pthread_mutex_t sysmon_lock;
  pthread_cond_t sysmon_cond;  /* guarded by sysmon_lock */
  _Atomic int npidle;          /* atomic: Ps blocked in netpoll */
  int64_t start_ns;            /* const */
  /* profiler (prof.h) */
  pthread_mutex_t prof_lock;   /* guards the fields below but the atomics */
  pthread_cond_t prof_cond;    /* guarded by prof_lock: wakes the sampler to quit */
  _Atomic bool prof_on;        /* atomic (set under prof_lock): a profile is taken */
  _Atomic int prof_hz;         /* atomic: sampling rate; 0 when not sampling */
  bool prof_quit;              /* guarded by prof_lock: the sampler must exit */
  bool prof_running;           /* guarded by prof_lock: prof_thread to join */
  pthread_t prof_thread;       /* guarded by prof_lock */
  int prof_run_hz;             /* set before rt_run (main thread): rt_run starts a
                                  profile of the whole run once its Ms exist
                                  (goluarun --profile); 0: none */
};

/* rt_new — allocates the runtime with config_nprocs(cfg) Ps (cfg is
** copied), creates each VM through open_vm (on the calling thread). Ms are
** started by rt_run. */
GLR_INTERNAL rt *rt_new(const rt_config *cfg, open_vm_fn open_vm, void *ud);
/* rt_run — starts M1..Mn-1 and sysmon, runs P0 on the calling thread until
** the runtime stops; joins every thread; returns the exit code. */
GLR_INTERNAL int rt_run(rt *r);
/* rt_free — closes the VMs (lua_close) and frees everything. */
GLR_INTERNAL void rt_free(rt *r);
/* rt_stop — Go: exit. First caller's code wins; safe from any thread. */
GLR_INTERNAL void rt_stop(rt *r, int reason, int code, bool close_vms);

/* sched_current_p — the P held by the calling thread's M, or NULL. */
GLR_INTERNAL P *sched_current_p(void);
/* vm_p — P lookup from any lua_State of a VM: the state's extra space
** (lua_getextraspace: the pointer-sized block just below L, sched.c
** asserts LUA_EXTRASPACE) holds its vmtag. Inline: the conn operations
** and their waits look it up a few dozen times per request. */
static inline P *vm_p(struct lua_State *L) {
  return (*(vmtag *const *)(const void *)((const char *)L - sizeof(void *)))->p;
}
/* vm_g — the G whose own thread is L, or NULL (L is a user coroutine or
** the VM's main thread). */
GLR_INTERNAL G *vm_g(struct lua_State *L);

/* sched_gstatus_name — "running", "waiting", ... (dumps). */
GLR_INTERNAL const char *sched_gstatus_name(gstatus s);
/* g_new — a G of p with its Lua thread, recycled when possible. The thread
** is empty; the caller pushes the entry function and arguments, sets nargs,
** then calls sched_start. */
GLR_INTERNAL G *g_new(P *p);
/* sched_start — make a fresh G runnable (Go: newproc puts it in runnext). */
GLR_INTERNAL void sched_start(P *p, G *g);
/* sched_ready — Go: goready. Same thread only: g must be WAITING on p. */
GLR_INTERNAL void sched_ready(P *p, G *g, bool next);
/* sched_ready_remote — from any thread: through the inbox. */
GLR_INTERNAL void sched_ready_remote(G *g);
/* sched_park — Go: gopark. Yields the running goroutine out of L (L may be
** a user coroutine nested in it); unlock(g, arg) runs once it is off its
** stack, and if it returns false the G is rescheduled at once. On resume,
** k(L, LUA_YIELD, ctx) runs. Never returns. Where L cannot yield (but
** sched_can_wait) it parks the G on its M instead: the M hands the P off
** and sleeps until the G is readied, takes the P back and returns
** k(L, LUA_YIELD, ctx) itself (runtime/HACKING.md, "Parking on the M"). */
GLR_INTERNAL int sched_park(struct lua_State *L, unlockf unlock, void *arg,
                            const char *reason, int kind, intptr_t ctx,
                            int (*k)(struct lua_State *, int, intptr_t));
/* sched_park_on — the park site names what the G will wait on (enum
** waitkind), so a group's cancel can detach it; call right before
** sched_park. */
GLR_INTERNAL void sched_park_on(struct lua_State *L, int kind, void *obj);
/* sched_cancelled — whether the running goroutine's group is cancelled */
GLR_INTERNAL bool sched_cancelled(struct lua_State *L);
/* sched_raise_cancelled — raises "cancelled" or "cancelled: REASON" */
GLR_INTERNAL int sched_raise_cancelled(struct lua_State *L);
/* sched_check_cancel — raises as above if the goroutine's group is
** cancelled (the entry of every blocking operation) */
GLR_INTERNAL void sched_check_cancel(struct lua_State *L);
/* sched_unref — owner M: drop a registry ref of p's VM */
GLR_INTERNAL void sched_unref(P *p, int ref);
/* sched_gosched — Go: Gosched. */
GLR_INTERNAL int sched_gosched(struct lua_State *L, intptr_t ctx,
                               int (*k)(struct lua_State *, int, intptr_t));
/* sched_can_park — whether L can yield through every enclosing resume. */
GLR_INTERNAL bool sched_can_park(struct lua_State *L);
/* sched_in_finalizer — whether a __gc metamethod is on L's call stack */
GLR_INTERNAL bool sched_in_finalizer(struct lua_State *L);
/* sched_can_block — L cannot yield but its M may block with the P handed
** off: inside a goroutine running on this M, not in a __gc finalizer */
GLR_INTERNAL bool sched_can_block(struct lua_State *L);
/* sched_can_wait — sched_park works here (yielding, or on the M) */
GLR_INTERNAL bool sched_can_wait(struct lua_State *L);
/* resume-chain bookkeeping of the replacement coroutine library */
GLR_INTERNAL void sched_chain_push(G *g, bool ok);
GLR_INTERNAL void sched_chain_pop(G *g);
/* sched_arm_gtimer — arm g's own timer (sleep / timeouts). */
GLR_INTERNAL void sched_arm_gtimer(P *p, G *g, int64_t when);
/* progress accounting for non-G event sources (go.after timers) */
GLR_INTERNAL void sched_progress_add(rt *r, int64_t d);
GLR_INTERNAL void sched_main_done(rt *r);
/* sched_publish — owner M: copy p's counters into p->pub (sysmon.h). */
GLR_INTERNAL void sched_publish(P *p);
/* sched_loop — run p on the calling M (which holds it) until the runtime
** stops (the P is then released) or the P was given to a waiting M and this
** M must leave it (returns false: a pool M goes idle). */
GLR_INTERNAL bool sched_loop(P *p);
/* sched_set_current_p — the calling thread now holds p (NULL: none). */
GLR_INTERNAL void sched_set_current_p(P *p);
/* scratch buffer of at least n bytes (owner M only) */
GLR_INTERNAL char *sched_scratch(P *p, size_t n);

/* sched_spare_take/put — the running P's one spare block of SCHED_SPARE
** bytes (malloc'd; owner M only): take returns it (or a new block, NULL
** when out of memory), put keeps b if the slot is empty and frees it
** otherwise, or when no P runs on this thread (a VM closed at exit).
** conn.c's read buffers: a buffer made and emptied per response costs no
** malloc/free pair. p_free frees the kept block. */
#define SCHED_SPARE (64 * 1024 + 64)
GLR_INTERNAL void *sched_spare_take(void);
GLR_INTERNAL void sched_spare_put(void *b);

#endif
