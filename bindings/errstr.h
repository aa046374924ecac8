/*
** errstr.h — the fixed error strings the bindings return to Lua as
** `nil, err[, partial]` (docs/API.md), defined once. Scripts compare them
** literally (`if err == "timeout"`), so they never change spelling.
** errstr_of maps an errno to the stable string when there is one, else to
** strerror's text. Floor 1: includes nothing from bindings/. Any thread.
*/
#ifndef GLR_ERRSTR_H
#define GLR_ERRSTR_H

#include <errno.h>
#include <string.h>

#define ERRSTR_TIMEOUT "timeout"
#define ERRSTR_CLOSED "closed"
#define ERRSTR_EOF "eof"
#define ERRSTR_RESET "connection reset"
#define ERRSTR_PIPE "broken pipe"
#define ERRSTR_REFUSED "connection refused"
#define ERRSTR_ADDRINUSE "address in use"
#define ERRSTR_NOHOST "no such host"
#define ERRSTR_TOOLONG "line too long"
#define ERRSTR_NOMEM "not enough memory"
#define ERRSTR_TRUNCATED "truncated"
#define ERRSTR_TLS_HANDSHAKE "tls handshake failed" /* ": detail" follows */
#define ERRSTR_TLS_VERIFY "certificate verify failed" /* ": detail" follows */
#define ERRSTR_TLS "tls error" /* after the handshake; ": detail" follows */
#define ERRSTR_CANCELLED "cancelled"
#define ERRSTR_NOTFOUND "not found" /* go.shared: d:incr without init, d:ttl */

static inline const char *errstr_of(int e) {
  switch (e) {
    case ECONNRESET: return ERRSTR_RESET;
    case EPIPE: return ERRSTR_PIPE;
    case ECONNREFUSED: return ERRSTR_REFUSED;
    case ETIMEDOUT: return ERRSTR_TIMEOUT;
    case EADDRINUSE: return ERRSTR_ADDRINUSE;
    default: return strerror(e);
  }
}

#endif
