/*
** netpoll.h — a P's epoll instance (Go: netpoll_epoll.go).
**
** Invariants:
**  - One epoll fd and one eventfd per P, both created at P init, closed at
**    free. The eventfd is registered level-triggered with data 0; pollDescs
**    edge-triggered for IN|OUT|RDHUP with data = pd_tag (slot, seq), once.
**  - EPOLL_CTL_DEL happens before the fd is closed (netpoll_close).
**  - netpoll() runs on the owner M only and readies woken Gs on its own P;
**    events whose seq is stale are dropped. IN/RDHUP/HUP/ERR wake readers,
**    OUT/HUP/ERR wake writers.
**  - netpoll_break() may be called from any thread and from signal handlers
**    (it only write()s the eventfd).
*/
#ifndef GLR_NETPOLL_H
#define GLR_NETPOLL_H

#include "pd.h"
#include "sched.h"

GLR_INTERNAL int netpoll_init(P *p);
GLR_INTERNAL void netpoll_free(P *p);
/* netpoll_open — register pd->fd on p's epoll; 0 or -errno. */
GLR_INTERNAL int netpoll_open(P *p, pollDesc *pd);
/* netpoll_close — deregister (before close(fd)). */
GLR_INTERNAL void netpoll_close(P *p, pollDesc *pd);
GLR_INTERNAL void netpoll_break(P *p);
/* netpoll — wait up to timeout ns (<0 forever, 0 = don't block); readies
** the Gs whose I/O became possible; returns how many were readied. */
GLR_INTERNAL int netpoll(P *p, int64_t timeout);
/* netpoll_dispatch — handle one event (tag, epoll event bits); exposed so
** tests can inject stale events. Returns Gs readied. */
GLR_INTERNAL int netpoll_dispatch(P *p, uint64_t tag, uint32_t events);
/* netpoll_mock_ready — fault injection: a synthetic readiness event for pd
** delivered at the next netpoll (used after a faked EAGAIN). */
GLR_INTERNAL void netpoll_mock_ready(P *p, pollDesc *pd, int mode);
GLR_INTERNAL bool netpoll_has_mock(P *p);

#endif
