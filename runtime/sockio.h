/*
** sockio.h — the socket system calls the net layer makes, with EINTR retried
** and the fault-injection switch (GOLUA_MOCKEAGAIN=r|w|rw, read once at
** start into rt->cfg; OpenResty's mockeagain): under it every stream read and write moves
** at most one byte and every other call fails with EAGAIN, after queueing a
** synthetic readiness event so the parked G is woken by the netpoller path.
** The chaos switch (GOLUA_CHAOS=SEED[:RATE], rt->cfg.chaos_*) adds random
** faults with a seed: EINTR (retried here, invisible above), short reads
** and writes, spurious EAGAIN, ECONNRESET and EPIPE (the socket shut down
** first, so the connection is really dead), EMFILE on accept; sockio.c
** says which call meets which. Both switches may be on together.
**
** Return convention: bytes (>= 0) or -errno. Owner M of the pollDesc only.
*/
#ifndef GLR_SOCKIO_H
#define GLR_SOCKIO_H

#include <sys/socket.h>
#include <sys/uio.h>

#include "pd.h"
#include "sched.h"

GLR_INTERNAL ssize_t sock_read(P *p, pollDesc *pd, void *buf, size_t n);
/* sock_read_would_block — true when sock_read would return -EAGAIN without
** a system call (the drained-read rule in sockio.c): a transport that
** wraps a protocol (TLS) can skip the library call that would end there. */
GLR_INTERNAL bool sock_read_would_block(pollDesc *pd);
GLR_INTERNAL ssize_t sock_writev(P *p, pollDesc *pd, struct iovec *iov, int cnt);
GLR_INTERNAL ssize_t sock_recvfrom(P *p, pollDesc *pd, void *buf, size_t n,
                                   struct sockaddr *sa, socklen_t *salen, int *flags);
GLR_INTERNAL ssize_t sock_sendto(P *p, pollDesc *pd, const void *buf, size_t n,
                                 const struct sockaddr *sa, socklen_t salen);
GLR_INTERNAL int sock_accept(P *p, pollDesc *pd, struct sockaddr *sa, socklen_t *salen);

#endif
