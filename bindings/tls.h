/*
** tls.h — TLS as one more conn transport (goluarun.h's glr_transport) on
** OpenSSL 3: the conn's operations (conn.c's one skeleton) drive SSL_read /
** SSL_write / SSL_do_handshake / SSL_shutdown, and a custom BIO moves the
** bytes with glr_read / glr_writev on the conn's pollDesc, so the
** fault-injection switches (GOLUA_MOCKEAGAIN, GOLUA_CHAOS) and the TCP drained-read
** shortcut apply, and every WANT_READ / WANT_WRITE becomes a park in that
** direction. No thread ever blocks in OpenSSL.
**
** Invariants:
**  - tls_config: one per (config table, side) per VM, cached in a weak-keyed
**    registry table (the table is read once); it owns the SSL_CTX and the
**    SNI contexts. Refcounted (atomic): the VM's cache entry, each listener
**    using it, each conn's state. Immutable after build, so a conn that
**    moved to another VM (go.spawn) may share it with its old VM.
**  - tls_state: one per TLS conn (c->tpdata), used by the goroutine running
**    the conn's operation only; its L/pd are valid for one SSL call (the
**    BIO reads them). OpenSSL's thread error queue is empty after every
**    call of this file (failures clear it); handshakes and shutdowns also
**    clear it before, reads and writes do not (WANT comes from the BIO's
**    EAGAIN, never from the queue).
**  - A moved conn carries its SSL (nops is 0, nothing is in flight) and
**    re-binds to the receiving VM's session cache (tp->moved).
**  - Client session cache: per VM (a registry userdata), keyed by dialled
**    address and server name and config; written by OpenSSL's new-session
**    callback, which runs only inside an SSL call of a conn of that VM.
**  - Buffers: SSL_MODE_RELEASE_BUFFERS, so an idle conn keeps no 34 KiB
**    record buffers, except a conn holding a keep slot (t->keeps): at most
**    64 in the process (an atomic count), taken when a read parks for the
**    next message, given back when the conn's state is freed (close, gc),
**    never on a move. Renegotiation is refused (SSL_OP_NO_RENEGOTIATION);
**    EOF without close_notify after the handshake is "eof"
**    (SSL_OP_IGNORE_UNEXPECTED_EOF).
** Thread rules: everything on the M holding the conn's VM, except the
** config refcount (any thread).
*/
#ifndef GLR_TLS_H
#define GLR_TLS_H

#include <lua.h>

#include "../runtime/common.h"
#include "conn.h"

typedef struct tls_config tls_config;

/* tls_config_get — the config of the TLS table at idx (or `true`: the
** default client config) for the server or client side; built on first
** use and cached for this VM. Raises a Lua error for a bad config (field
** types, unreadable files, key mismatch). The pointer is borrowed: take a
** ref to keep it beyond the table's life. */
GLR_INTERNAL tls_config *tls_config_get(lua_State *L, int idx, bool server);
GLR_INTERNAL void tls_config_ref(tls_config *cfg);
GLR_INTERNAL void tls_config_unref(tls_config *cfg);

/* tls_accept — make the conn at the top of the stack (just accepted) a
** server TLS conn; the handshake runs on its first operation. 0 or -errno. */
GLR_INTERNAL int tls_accept(lua_State *L, conn *c, tls_config *cfg);

/* tls_dial — the conn at cidx just connected to addr (as dialled; host the
** name to verify by default, NULL for unix sockets): install TLS and run the
** handshake before returning (the conn, or nil, err with the conn closed),
** bounded by the absolute deadline (0: none). Returns like a lua_CFunction
** (it may park). */
GLR_INTERNAL int tls_dial(lua_State *L, int cidx, tls_config *cfg, const char *addr,
                          const char *host, int64_t deadline);

/* tls_open — adds starttls and tlsinfo to the stream conn class. */
GLR_INTERNAL void tls_open(lua_State *L);

#endif
