/*
** test_chan.c — the channel core (runtime/chan.h), uint64 elements and
** sudogs, no Lua and no scheduler: the test plays every goroutine.
**
** Deterministic sections: buffered FIFO (with wrap-around), unbuffered
** hand-off to a waiting receiver / from a waiting sender, a waiting sender
** admitted when a full buffer is received from, FIFO service of waiters,
** close (wakes receivers then senders with ok=false, buffered values still
** drain, send/close on a closed channel), select (sudogs sharing a selstate:
** the first counterpart claims, the sibling is skipped and lazily unlinked,
** chan_dequeue of an unlinked sudog is a no-op).
**
** Randomized section: 100,000 operations on two channels (random capacity,
** re-created after close) by plain senders/receivers and two-case selects,
** compared step by step against a reference model; every value is tracked
** so none is lost or delivered twice.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/chan.h"
#include "check.h"

static int fake_g;
#define FG ((void *)&fake_g)

static sudog mk(bool isrecv, uint64_t elem) {
  sudog s;
  memset(&s, 0, sizeof s);
  s.g = FG;
  s.isrecv = isrecv;
  s.elem = elem;
  return s;
}

/* whether any sudog (live or a skipped select sibling) is queued on c */
static bool has_waiters(const chan *c) { return c->recvq.first || c->sendq.first; }

/* chan_close's list of woken sudogs, recorded in order */
static sudog *woke[64];
static int nwoke;
static void record_wake(sudog *sg, void *arg) {
  CHECK(arg == (void *)&nwoke);
  CHECK(!sg->linked); /* unlinked before the wake-up */
  CHECK(!sg->ok);
  woke[nwoke++] = sg;
}

/* chan_close, then wake each sudog of its list through wake(sg, arg) */
static int close_wake(chan *c, void (*wake)(sudog *, void *), void *arg) {
  sudog *sg;
  int r = chan_close(c, &sg);
  while (sg) {
    sudog *next = sg->next;
    wake(sg, arg);
    sg = next;
  }
  return r;
}

/* ------------------------------------------------------------------ */

static void test_buffered_fifo(void) {
  chan c;
  chan_init(&c, 4);
  sudog *w;
  uint64_t v;
  bool ok;
  CHECK(!has_waiters(&c));
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_WOULDBLOCK);
  CHECK(w == NULL);
  for (uint64_t i = 1; i <= 4; i++) {
    CHECK_EQ(chan_trysend(&c, i, &w), CHAN_OK);
    CHECK(w == NULL);
    CHECK_EQ(c.count, i);
  }
  CHECK_EQ(chan_trysend(&c, 5, &w), CHAN_WOULDBLOCK);
  CHECK(w == NULL);
  CHECK_EQ(c.count, 4);
  for (uint64_t i = 1; i <= 4; i++) {
    CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
    CHECK(ok && v == i && w == NULL);
  }
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_WOULDBLOCK);
  /* wrap-around: keep 0..3 elements in flight over many laps */
  uint64_t next_send = 100, next_recv = 100;
  for (int step = 0; step < 1000; step++) {
    int burst = 1 + step % 4;
    for (int k = 0; k < burst && c.count < c.cap; k++)
      CHECK_EQ(chan_trysend(&c, next_send++, &w), CHAN_OK);
    int take = 1 + (step * 7) % 4;
    for (int k = 0; k < take && c.count > 0; k++) {
      CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
      CHECK(ok);
      CHECK_EQ(v, next_recv++);
    }
  }
  while (c.count) {
    CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
    CHECK_EQ(v, next_recv++);
  }
  CHECK_EQ(next_send, next_recv);
  chan_free(&c);
}

static void test_unbuffered(void) {
  chan c;
  chan_init(&c, 0);
  sudog *w;
  uint64_t v = 99;
  bool ok;
  CHECK_EQ(chan_trysend(&c, 1, &w), CHAN_WOULDBLOCK);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_WOULDBLOCK);

  /* hand-off to a waiting receiver */
  sudog r = mk(true, 0);
  chan_enqueue(&c, &r);
  CHECK(r.c == &c);
  CHECK(has_waiters(&c));
  CHECK_EQ(chan_trysend(&c, 42, &w), CHAN_OK);
  CHECK(w == &r);
  CHECK(r.elem == 42 && r.ok);
  CHECK(!r.linked);
  CHECK(!has_waiters(&c));
  CHECK_EQ(c.count, 0);

  /* hand-off from a waiting sender */
  sudog s = mk(false, 7);
  chan_enqueue(&c, &s);
  CHECK(has_waiters(&c));
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(w == &s && v == 7 && ok && s.ok);
  CHECK(!s.linked);
  CHECK(!has_waiters(&c));

  /* waiters are served FIFO */
  sudog rs[3] = {mk(true, 0), mk(true, 0), mk(true, 0)};
  for (int i = 0; i < 3; i++) chan_enqueue(&c, &rs[i]);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(chan_trysend(&c, 10 + (uint64_t)i, &w), CHAN_OK);
    CHECK(w == &rs[i]);
    CHECK_EQ(rs[i].elem, 10 + i);
  }
  sudog ss[3] = {mk(false, 20), mk(false, 21), mk(false, 22)};
  for (int i = 0; i < 3; i++) chan_enqueue(&c, &ss[i]);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
    CHECK(w == &ss[i]);
    CHECK_EQ(v, 20 + i);
  }

  /* a cancelled receiver (dequeued, e.g. timed out) is not served */
  sudog r1 = mk(true, 0), r2 = mk(true, 0);
  chan_enqueue(&c, &r1);
  chan_enqueue(&c, &r2);
  chan_dequeue(&r1);
  CHECK(r1.c == NULL);
  chan_dequeue(&r1); /* already unlinked: no-op */
  CHECK_EQ(chan_trysend(&c, 5, &w), CHAN_OK);
  CHECK(w == &r2);
  CHECK(!r1.ok);
  /* dequeue in the middle and at the tail keep the list consistent */
  sudog q[4] = {mk(true, 0), mk(true, 0), mk(true, 0), mk(true, 0)};
  for (int i = 0; i < 4; i++) chan_enqueue(&c, &q[i]);
  chan_dequeue(&q[1]);
  chan_dequeue(&q[3]);
  CHECK_EQ(chan_trysend(&c, 1, &w), CHAN_OK);
  CHECK(w == &q[0]);
  CHECK_EQ(chan_trysend(&c, 2, &w), CHAN_OK);
  CHECK(w == &q[2]);
  CHECK_EQ(chan_trysend(&c, 3, &w), CHAN_WOULDBLOCK);
  CHECK(!has_waiters(&c));
  chan_free(&c);
}

static void test_sender_admitted(void) {
  chan c;
  chan_init(&c, 2);
  sudog *w;
  uint64_t v;
  bool ok;
  CHECK_EQ(chan_trysend(&c, 1, &w), CHAN_OK);
  CHECK_EQ(chan_trysend(&c, 2, &w), CHAN_OK);
  CHECK_EQ(chan_trysend(&c, 3, &w), CHAN_WOULDBLOCK);
  sudog s3 = mk(false, 3), s4 = mk(false, 4);
  chan_enqueue(&c, &s3);
  chan_enqueue(&c, &s4);
  /* receiving from the full buffer admits the first waiting sender */
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(v == 1 && ok && w == &s3 && s3.ok);
  CHECK_EQ(c.count, 2);
  CHECK(!s3.linked && s4.c == &c);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(v == 2 && w == &s4 && s4.ok);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(v == 3 && w == NULL);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(v == 4 && w == NULL);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_WOULDBLOCK);
  CHECK(!has_waiters(&c));
  chan_free(&c);
}

static void test_close(void) {
  sudog *w;
  uint64_t v;
  bool ok;

  /* receivers woken with ok=false, in order */
  chan c;
  chan_init(&c, 3);
  sudog r[3] = {mk(true, 0), mk(true, 0), mk(true, 0)};
  for (int i = 0; i < 3; i++) {
    r[i].elem = 77; /* close must reset it */
    chan_enqueue(&c, &r[i]);
  }
  nwoke = 0;
  CHECK_EQ(close_wake(&c, record_wake, &nwoke), CHAN_OK);
  CHECK_EQ(nwoke, 3);
  for (int i = 0; i < 3; i++) {
    CHECK(woke[i] == &r[i]);
    CHECK(!r[i].ok && r[i].elem == 0);
  }
  CHECK(!has_waiters(&c));
  CHECK_EQ(close_wake(&c, record_wake, &nwoke), CHAN_CLOSED); /* twice */
  CHECK_EQ(nwoke, 3);
  CHECK_EQ(chan_trysend(&c, 1, &w), CHAN_CLOSED);
  CHECK(w == NULL);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(!ok && v == 0 && w == NULL);
  chan_free(&c);

  /* senders blocked on a full buffer: woken with ok=false; the buffered
  ** values still drain, then ok=false forever */
  chan_init(&c, 2);
  CHECK_EQ(chan_trysend(&c, 11, &w), CHAN_OK);
  CHECK_EQ(chan_trysend(&c, 12, &w), CHAN_OK);
  sudog s[2] = {mk(false, 13), mk(false, 14)};
  chan_enqueue(&c, &s[0]);
  chan_enqueue(&c, &s[1]);
  nwoke = 0;
  CHECK_EQ(close_wake(&c, record_wake, &nwoke), CHAN_OK);
  CHECK_EQ(nwoke, 2);
  CHECK(woke[0] == &s[0] && woke[1] == &s[1]);
  CHECK(!s[0].ok && !s[1].ok);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(ok && v == 11 && w == NULL);
  CHECK_EQ(chan_trysend(&c, 15, &w), CHAN_CLOSED);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(ok && v == 12);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
    CHECK(!ok && v == 0);
  }
  chan_free(&c);

  /* unbuffered with waiting senders */
  chan_init(&c, 0);
  sudog s0 = mk(false, 1);
  chan_enqueue(&c, &s0);
  nwoke = 0;
  CHECK_EQ(close_wake(&c, record_wake, &nwoke), CHAN_OK);
  CHECK(nwoke == 1 && woke[0] == &s0 && !s0.ok);
  CHECK_EQ(chan_tryrecv(&c, &v, &ok, &w), CHAN_OK);
  CHECK(!ok);
  chan_free(&c);

  /* close of an empty channel wakes nobody */
  chan_init(&c, 1);
  nwoke = 0;
  CHECK_EQ(close_wake(&c, record_wake, &nwoke), CHAN_OK);
  CHECK_EQ(nwoke, 0);
  chan_free(&c);
}

static void test_select(void) {
  sudog *w;
  uint64_t v;
  bool ok;
  chan c1, c2;
  chan_init(&c1, 0);
  chan_init(&c2, 0);

  /* select { case <-c1 (0): case <-c2 (1): } */
  selstate sel = {false, -1};
  sudog a = mk(true, 0), b = mk(true, 0);
  a.sel = b.sel = &sel;
  a.caseidx = 0;
  b.caseidx = 1;
  chan_enqueue(&c1, &a);
  chan_enqueue(&c2, &b);
  CHECK_EQ(chan_trysend(&c1, 5, &w), CHAN_OK);
  CHECK(w == &a && a.elem == 5 && a.ok);
  CHECK(sel.done && sel.fired == 0);
  /* the sibling is still linked (lazy) but must be skipped */
  CHECK(b.c == &c2);
  CHECK_EQ(chan_trysend(&c2, 6, &w), CHAN_WOULDBLOCK);
  CHECK(w == NULL);
  CHECK(!b.ok && b.elem == 0);
  CHECK(!b.linked); /* unlinked while being skipped */
  CHECK(!has_waiters(&c2));
  chan_dequeue(&b); /* already unlinked: no-op */
  CHECK(b.c == NULL);
  chan_dequeue(&a);
  CHECK(sel.fired == 0);

  /* with a buffer, the send to the skipped sibling's channel buffers */
  chan c3;
  chan_init(&c3, 1);
  selstate sel2 = {false, -1};
  sudog x = mk(true, 0), y = mk(true, 0);
  x.sel = y.sel = &sel2;
  x.caseidx = 0;
  y.caseidx = 1;
  chan_enqueue(&c1, &x);
  chan_enqueue(&c3, &y);
  CHECK_EQ(chan_trysend(&c1, 8, &w), CHAN_OK);
  CHECK(w == &x && sel2.fired == 0);
  CHECK_EQ(chan_trysend(&c3, 9, &w), CHAN_OK);
  CHECK(w == NULL); /* buffered, not delivered to y */
  CHECK(!y.ok);
  CHECK_EQ(c3.count, 1);
  CHECK_EQ(chan_tryrecv(&c3, &v, &ok, &w), CHAN_OK);
  CHECK(v == 9 && ok);

  /* a dead select sudog ahead of a live plain receiver is skipped and the
  ** live one served */
  selstate sel3 = {false, -1};
  sudog p = mk(true, 0), q = mk(true, 0), plain = mk(true, 0);
  p.sel = q.sel = &sel3;
  p.caseidx = 0;
  q.caseidx = 1;
  chan_enqueue(&c1, &p);
  chan_enqueue(&c2, &q);
  chan_enqueue(&c2, &plain);
  CHECK_EQ(chan_trysend(&c1, 1, &w), CHAN_OK);
  CHECK(w == &p);
  CHECK_EQ(chan_trysend(&c2, 2, &w), CHAN_OK);
  CHECK(w == &plain && plain.elem == 2);
  CHECK(!q.linked && !q.ok);
  CHECK(sel3.fired == 0);

  /* select with a send case and a recv case: the receiver claims the send
  ** case; a later sender to the recv case's channel does not deliver */
  selstate sel4 = {false, -1};
  sudog sc = mk(false, 31), rc = mk(true, 0);
  sc.sel = rc.sel = &sel4;
  sc.caseidx = 0;
  rc.caseidx = 1;
  chan_enqueue(&c1, &sc);
  chan_enqueue(&c2, &rc);
  CHECK_EQ(chan_tryrecv(&c1, &v, &ok, &w), CHAN_OK);
  CHECK(w == &sc && v == 31 && ok && sc.ok);
  CHECK(sel4.done && sel4.fired == 0);
  CHECK_EQ(chan_trysend(&c2, 32, &w), CHAN_WOULDBLOCK);
  CHECK(!rc.ok);

  /* a select whose winner dequeues its siblings eagerly (Go: selectgo
  ** after wake) leaves nothing behind */
  selstate sel5 = {false, -1};
  sudog e0 = mk(true, 0), e1 = mk(true, 0);
  e0.sel = e1.sel = &sel5;
  e0.caseidx = 0;
  e1.caseidx = 1;
  chan_enqueue(&c1, &e0);
  chan_enqueue(&c2, &e1);
  CHECK_EQ(chan_trysend(&c2, 40, &w), CHAN_OK);
  CHECK(w == &e1 && sel5.fired == 1);
  chan_dequeue(&e0);
  chan_dequeue(&e1);
  CHECK(!has_waiters(&c1) && !has_waiters(&c2));

  /* two cases on the same channel: only the first fires */
  selstate sel6 = {false, -1};
  sudog d0 = mk(true, 0), d1 = mk(true, 0);
  d0.sel = d1.sel = &sel6;
  d0.caseidx = 0;
  d1.caseidx = 1;
  chan_enqueue(&c1, &d0);
  chan_enqueue(&c1, &d1);
  CHECK_EQ(chan_trysend(&c1, 50, &w), CHAN_OK);
  CHECK(w == &d0 && sel6.fired == 0);
  CHECK_EQ(chan_trysend(&c1, 51, &w), CHAN_WOULDBLOCK);
  CHECK(!d1.ok && !d1.linked);

  /* close fires a select case (fired = its index); the sibling in another
  ** channel is skipped when that one is closed too */
  selstate sel7 = {false, -1};
  sudog k0 = mk(true, 0), k1 = mk(false, 60);
  k0.sel = k1.sel = &sel7;
  k0.caseidx = 0;
  k1.caseidx = 1;
  chan_enqueue(&c1, &k0);
  chan_enqueue(&c2, &k1);
  nwoke = 0;
  CHECK_EQ(close_wake(&c1, record_wake, &nwoke), CHAN_OK);
  CHECK(nwoke == 1 && woke[0] == &k0 && !k0.ok);
  CHECK(sel7.done && sel7.fired == 0);
  nwoke = 0;
  CHECK_EQ(close_wake(&c2, record_wake, &nwoke), CHAN_OK);
  CHECK_EQ(nwoke, 0);
  CHECK(!k1.linked);

  /* a select cancelled by its timeout (done already set) is never fired */
  chan c4;
  chan_init(&c4, 0);
  selstate sel8 = {false, -1};
  sudog t0 = mk(true, 0);
  t0.sel = &sel8;
  chan_enqueue(&c4, &t0);
  sel8.done = true;
  sel8.fired = -1;
  CHECK_EQ(chan_trysend(&c4, 1, &w), CHAN_WOULDBLOCK);
  CHECK(sel8.fired == -1 && !t0.ok);

  chan_free(&c1);
  chan_free(&c2);
  chan_free(&c3);
  chan_free(&c4);
}

/* ------------------------------------------------------------------ */
/* randomized model                                                    */

enum { NCH = 2, NW = 48, MAXCAP = 5, NOPS = 100000, MAXVAL = 4 * NOPS };

typedef struct waiter {
  bool active;   /* has a G (waiting or zombie sudogs) */
  bool waiting;  /* still blocked (not woken/cancelled) */
  bool isselect;
  bool mdone;    /* model: select claimed */
  int mfired;
  int ncase;
  selstate sel;
  sudog sg[2];
  int ch[2];
  bool inq[2];   /* model: linked */
  uint64_t val[2]; /* send cases: the value offered (the core moves it out) */
} waiter;

typedef struct mq {
  sudog *v[NW * 2];
  int n;
} mq;

typedef struct mchan {
  uint32_t cap, count;
  uint64_t buf[MAXCAP];
  bool closed;
  mq recvq, sendq;
} mchan;

enum { V_NONE = 0, V_QUEUED, V_BUF, V_RECV, V_DROPPED };

static chan C[NCH];
static mchan MC[NCH];
static waiter W[NW];
static unsigned char vstate[MAXVAL];
static uint64_t next_val;

static uint64_t rng = 0x6A09E667F3BCC908ull;
static uint64_t rnd(void) { return check_xorshift(&rng); }

static waiter *wof(sudog *s) { return (waiter *)s->g; }
static int case_of(sudog *s) { return s->caseidx; }
static uint64_t offered(sudog *s) { return wof(s)->val[case_of(s)]; }

static void mq_push(mq *q, sudog *s) {
  CHECK(q->n < NW * 2);
  q->v[q->n++] = s;
  wof(s)->inq[case_of(s)] = true;
}
static void retire_if_done(waiter *w);
static void mq_remove_at(mq *q, int i) {
  waiter *w = wof(q->v[i]);
  w->inq[case_of(q->v[i])] = false;
  memmove(&q->v[i], &q->v[i + 1], (size_t)(q->n - i - 1) * sizeof q->v[0]);
  q->n--;
  retire_if_done(w); /* a zombie select whose last sibling was skipped */
}
static void mq_remove(mq *q, sudog *s) {
  for (int i = 0; i < q->n; i++)
    if (q->v[i] == s) {
      mq_remove_at(q, i);
      return;
    }
}
static sudog *m_claim(mq *q) {
  while (q->n) {
    sudog *s = q->v[0];
    mq_remove_at(q, 0);
    waiter *w = wof(s);
    if (!w->isselect) return s;
    if (w->mdone) continue;
    w->mdone = true;
    w->mfired = s->caseidx;
    return s;
  }
  return NULL;
}
static bool m_live(const mq *q) {
  for (int i = 0; i < q->n; i++) {
    waiter *w = wof(q->v[i]);
    if (!w->isselect || !w->mdone) return true;
  }
  return false;
}
static bool m_send_blocks(int c) {
  mchan *m = &MC[c];
  return !m->closed && !m_live(&m->recvq) && m->count == m->cap;
}
static bool m_recv_blocks(int c) {
  mchan *m = &MC[c];
  return !m->closed && m->count == 0 && !m_live(&m->sendq);
}
static mq *m_queue(int c, bool isrecv) { return isrecv ? &MC[c].recvq : &MC[c].sendq; }

static void retire_if_done(waiter *w) {
  if (w->active && !w->waiting && !w->inq[0] && !w->inq[1]) w->active = false;
}

/* the G of w was readied through sudog s (by a counterpart or close) */
static void on_woken(sudog *s, bool by_close) {
  waiter *w = wof(s);
  CHECK(w->active && w->waiting);
  CHECK(!s->linked);
  w->waiting = false;
  if (w->isselect) {
    CHECK(w->sel.done);
    CHECK_EQ(w->sel.fired, s->caseidx);
    CHECK(w->mdone && w->mfired == s->caseidx);
    /* the other send cases' values are never delivered */
    for (int k = 0; k < w->ncase; k++)
      if (&w->sg[k] != s && !w->sg[k].isrecv) {
        CHECK_EQ(vstate[w->sg[k].elem], V_QUEUED);
        vstate[w->sg[k].elem] = V_DROPPED;
      }
    /* Go's selectgo dequeues every case after waking; sometimes do that,
    ** sometimes leave the siblings for the channels to skip lazily */
    if (rnd() % 2) {
      for (int k = 0; k < w->ncase; k++) {
        chan_dequeue(&w->sg[k]);
        if (w->inq[k]) mq_remove(m_queue(w->ch[k], w->sg[k].isrecv), &w->sg[k]);
      }
    }
  }
  if (by_close) {
    CHECK(!s->ok);
    if (s->isrecv) CHECK(s->elem == 0);
    else {
      CHECK_EQ(vstate[s->elem], V_QUEUED);
      vstate[s->elem] = V_DROPPED;
    }
  } else {
    CHECK(s->ok);
  }
  retire_if_done(w);
}

static waiter *free_waiter(void) {
  int start = (int)(rnd() % NW);
  for (int k = 0; k < NW; k++) {
    waiter *w = &W[(start + k) % NW];
    if (!w->active) return w;
  }
  return NULL;
}

static void setup_sudog(waiter *w, int k, int c, bool isrecv) {
  sudog *s = &w->sg[k];
  memset(s, 0, sizeof *s);
  s->g = w;
  s->isrecv = isrecv;
  s->caseidx = k;
  s->sel = w->isselect ? &w->sel : NULL;
  w->ch[k] = c;
  if (!isrecv) {
    s->elem = w->val[k] = ++next_val;
    CHECK(next_val < MAXVAL);
    vstate[s->elem] = V_QUEUED;
  }
}

static void enqueue_waiter(waiter *w) {
  w->active = w->waiting = true;
  for (int k = 0; k < w->ncase; k++) {
    chan_enqueue(&C[w->ch[k]], &w->sg[k]);
    mq_push(m_queue(w->ch[k], w->sg[k].isrecv), &w->sg[k]);
  }
}

static unsigned long st_send_ok, st_send_handoff, st_send_block, st_recv_buf,
    st_recv_direct, st_recv_admit, st_recv_block, st_closed_recv, st_selects,
    st_cancels, st_closes, st_lazy_skips;

static void op_send(int c) {
  uint64_t v = ++next_val;
  CHECK(next_val < MAXVAL);
  mchan *m = &MC[c];
  sudog *w = (sudog *)1;
  int res = chan_trysend(&C[c], v, &w);
  if (m->closed) {
    CHECK_EQ(res, CHAN_CLOSED);
    CHECK(w == NULL);
    return;
  }
  int before = m->recvq.n;
  sudog *r = m_claim(&m->recvq);
  st_lazy_skips += (unsigned long)(before - m->recvq.n - (r ? 1 : 0));
  if (r) {
    CHECK_EQ(res, CHAN_OK);
    CHECK(w == r);
    CHECK_EQ(r->elem, v);
    vstate[v] = V_RECV;
    on_woken(r, false);
    st_send_handoff++;
  } else if (m->count < m->cap) {
    CHECK_EQ(res, CHAN_OK);
    CHECK(w == NULL);
    m->buf[m->count++] = v;
    vstate[v] = V_BUF;
    st_send_ok++;
  } else {
    CHECK_EQ(res, CHAN_WOULDBLOCK);
    CHECK(w == NULL);
    st_send_block++;
    waiter *nw = rnd() % 3 ? free_waiter() : NULL;
    if (nw) { /* block: a plain sender with a fresh value */
      nw->isselect = false;
      nw->ncase = 1;
      nw->mdone = false;
      nw->inq[0] = nw->inq[1] = false;
      setup_sudog(nw, 0, c, false);
      enqueue_waiter(nw);
    }
  }
}

static void op_recv(int c) {
  mchan *m = &MC[c];
  uint64_t v = 12345;
  bool ok = false;
  sudog *w = (sudog *)1;
  int res = chan_tryrecv(&C[c], &v, &ok, &w);
  if (m->count > 0) {
    CHECK_EQ(res, CHAN_OK);
    CHECK(ok);
    CHECK_EQ(v, m->buf[0]);
    CHECK_EQ(vstate[v], V_BUF);
    vstate[v] = V_RECV;
    memmove(&m->buf[0], &m->buf[1], (m->count - 1) * sizeof m->buf[0]);
    m->count--;
    st_recv_buf++;
    sudog *s = m_claim(&m->sendq);
    if (s) {
      CHECK(w == s);
      CHECK_EQ(s->elem, 0); /* moved into the buffer */
      CHECK_EQ(vstate[offered(s)], V_QUEUED);
      vstate[offered(s)] = V_BUF;
      m->buf[m->count++] = offered(s);
      on_woken(s, false);
      st_recv_admit++;
    } else {
      CHECK(w == NULL);
    }
    return;
  }
  sudog *s = m_claim(&m->sendq);
  if (s) {
    CHECK_EQ(res, CHAN_OK);
    CHECK(ok && w == s);
    CHECK_EQ(v, offered(s));
    CHECK_EQ(s->elem, 0); /* moved out */
    CHECK_EQ(vstate[v], V_QUEUED);
    vstate[v] = V_RECV;
    on_woken(s, false);
    st_recv_direct++;
  } else if (m->closed) {
    CHECK_EQ(res, CHAN_OK);
    CHECK(!ok && v == 0 && w == NULL);
    st_closed_recv++;
  } else {
    CHECK_EQ(res, CHAN_WOULDBLOCK);
    CHECK(w == NULL);
    st_recv_block++;
    waiter *nw = rnd() % 3 ? free_waiter() : NULL;
    if (nw) {
      nw->isselect = false;
      nw->ncase = 1;
      nw->mdone = false;
      nw->inq[0] = nw->inq[1] = false;
      setup_sudog(nw, 0, c, true);
      enqueue_waiter(nw);
    }
  }
}

/* a two-case select that blocks: enqueue on both, only if neither case can
** proceed now (as selectgo's first pass would find) */
static void op_select(void) {
  int c0 = (int)(rnd() % NCH), c1 = (int)(rnd() % NCH);
  bool r0 = rnd() % 2, r1 = rnd() % 2;
  if (c0 == c1) r1 = r0; /* no send+recv on one channel in one select */
  bool b0 = r0 ? m_recv_blocks(c0) : m_send_blocks(c0);
  bool b1 = r1 ? m_recv_blocks(c1) : m_send_blocks(c1);
  if (!b0 || !b1) return;
  waiter *w = free_waiter();
  if (!w) return;
  w->isselect = true;
  w->ncase = 2;
  w->mdone = false;
  w->mfired = -1;
  w->sel.done = false;
  w->sel.fired = -1;
  w->inq[0] = w->inq[1] = false;
  setup_sudog(w, 0, c0, r0);
  setup_sudog(w, 1, c1, r1);
  enqueue_waiter(w);
  st_selects++;
}

/* a waiting G gives up (timeout): for a select the timer claims the
** selstate first (sched.c g_sleep_fire), then every case is dequeued */
static void op_cancel(void) {
  int start = (int)(rnd() % NW);
  for (int k = 0; k < NW; k++) {
    waiter *w = &W[(start + k) % NW];
    if (!w->active || !w->waiting) continue;
    if (w->isselect) {
      w->sel.done = true;
      w->sel.fired = -1;
      w->mdone = true;
    }
    for (int j = 0; j < w->ncase; j++) {
      chan_dequeue(&w->sg[j]);
      if (w->inq[j]) mq_remove(m_queue(w->ch[j], w->sg[j].isrecv), &w->sg[j]);
      CHECK(w->sg[j].c == NULL);
      if (!w->sg[j].isrecv) {
        CHECK_EQ(vstate[w->sg[j].elem], V_QUEUED);
        vstate[w->sg[j].elem] = V_DROPPED;
      }
    }
    w->waiting = false;
    retire_if_done(w);
    st_cancels++;
    return;
  }
}

static sudog *close_woke[NW * 2];
static int nclose_woke;
static void close_cb(sudog *sg, void *arg) {
  CHECK(arg == (void *)close_woke);
  CHECK(nclose_woke < NW * 2);
  close_woke[nclose_woke++] = sg;
}

static void op_close(int c) {
  mchan *m = &MC[c];
  nclose_woke = 0;
  int res = close_wake(&C[c], close_cb, close_woke);
  if (m->closed) {
    CHECK_EQ(res, CHAN_CLOSED);
    CHECK_EQ(nclose_woke, 0);
    return;
  }
  CHECK_EQ(res, CHAN_OK);
  m->closed = true;
  sudog *expect[NW * 2];
  int n = 0;
  sudog *s;
  while ((s = m_claim(&m->recvq)) != NULL) expect[n++] = s;
  while ((s = m_claim(&m->sendq)) != NULL) expect[n++] = s;
  CHECK_EQ(nclose_woke, n);
  for (int i = 0; i < n; i++) CHECK(close_woke[i] == expect[i]);
  for (int i = 0; i < n; i++) on_woken(expect[i], true);
  CHECK(!has_waiters(&C[c]));
  st_closes++;
}

static void new_chan(int c) {
  uint32_t cap = (uint32_t)(rnd() % (MAXCAP + 1));
  chan_init(&C[c], cap);
  memset(&MC[c], 0, sizeof MC[c]);
  MC[c].cap = cap;
}

static void check_consistent(void) {
  for (int c = 0; c < NCH; c++) {
    mchan *m = &MC[c];
    CHECK_EQ(C[c].count, m->count);
    CHECK(C[c].closed == m->closed);
    CHECK(has_waiters(&C[c]) == (m->recvq.n + m->sendq.n > 0));
    /* Go's invariants, over live waiters */
    if (m_live(&m->recvq)) CHECK(m->count == 0 && !m_live(&m->sendq));
    if (m_live(&m->sendq)) CHECK(m->count == m->cap);
  }
  for (int i = 0; i < NW; i++) {
    waiter *w = &W[i];
    for (int k = 0; k < w->ncase; k++)
      CHECK(w->sg[k].linked == (w->active && w->inq[k]));
  }
}

static void test_model_random(void) {
  memset(W, 0, sizeof W);
  for (int c = 0; c < NCH; c++) new_chan(c);
  for (int step = 0; step < NOPS; step++) {
    int c = (int)(rnd() % NCH);
    unsigned op = (unsigned)(rnd() % 1000);
    if (op < 380) op_send(c);
    else if (op < 760) op_recv(c);
    else if (op < 900) op_select();
    else if (op < 996) op_cancel();
    else op_close(c);
    /* a closed channel is re-created once drained and unwaited (its queues
    ** are empty after close; lazily skipped siblings were unlinked) */
    for (int k = 0; k < NCH; k++)
      if (MC[k].closed && MC[k].count == 0 && rnd() % 4 == 0) {
        CHECK(!has_waiters(&C[k]));
        chan_free(&C[k]);
        new_chan(k);
      }
    if (step % 8 == 0) check_consistent();
  }
  /* wind down: close both, drain, dequeue leftover siblings */
  for (int c = 0; c < NCH; c++) {
    op_close(c);
    for (;;) {
      uint64_t v;
      bool ok;
      sudog *w;
      CHECK_EQ(chan_tryrecv(&C[c], &v, &ok, &w), CHAN_OK);
      CHECK(w == NULL);
      if (!ok) break;
      CHECK_EQ(vstate[v], V_BUF);
      vstate[v] = V_RECV;
      CHECK(MC[c].count > 0);
      memmove(&MC[c].buf[0], &MC[c].buf[1], (MC[c].count - 1) * sizeof MC[c].buf[0]);
      MC[c].count--;
    }
    CHECK_EQ(MC[c].count, 0);
  }
  for (int i = 0; i < NW; i++) {
    CHECK(!W[i].waiting || !W[i].active);
    for (int k = 0; k < W[i].ncase; k++) CHECK(!W[i].sg[k].linked);
  }
  unsigned long recv = 0, dropped = 0;
  for (uint64_t v = 1; v <= next_val; v++) {
    CHECK(vstate[v] != V_QUEUED && vstate[v] != V_BUF);
    recv += vstate[v] == V_RECV;
    dropped += vstate[v] == V_DROPPED;
  }
  printf("model: %d ops; sends: %lu buffered, %lu handed off, %lu blocked; "
         "recvs: %lu from buffer (%lu admitted a sender), %lu direct, %lu "
         "blocked, %lu closed; %lu selects, %lu cancels, %lu closes, %lu lazy "
         "skips; %lu values received, %lu dropped\n",
         NOPS, st_send_ok, st_send_handoff, st_send_block, st_recv_buf,
         st_recv_admit, st_recv_direct, st_recv_block, st_closed_recv,
         st_selects, st_cancels, st_closes, st_lazy_skips, recv, dropped);
  for (int c = 0; c < NCH; c++) chan_free(&C[c]);
}

int main(void) {
  test_buffered_fifo();
  test_unbuffered();
  test_sender_admitted();
  test_close();
  test_select();
  test_model_random();
  CHECK_DONE();
}
