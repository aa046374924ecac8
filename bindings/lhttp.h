/*
** lhttp.h — the `goluarun.httpparse` module: the byte-level loops of
** HTTP/1.1 (RFC 9112) head parsing in C, for goluarun.http's server and
** client (floor 3). The grammar is the LPeg one of lua/goluarun/http.lua,
** which stays the reference: for the same bytes both give the same
** captures, or both no match (spec/httpparse_spec.lua checks it).
** Stateless: every function runs on the M holding the caller's P and
** touches only its arguments.
*/
#ifndef GLR_LHTTP_H
#define GLR_LHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_httpparse — the httpparse table (main.c registers it in
** package.preload as "goluarun.httpparse") */
GLR_INTERNAL int luaopen_httpparse(lua_State *L);

/* lhttp_push_upvalues — pushes the interned strings the parser pushes
** from its C function's upvalues (common names, methods, digits): every
** C function calling lhttp_response_head is made with them (luaL_setfuncs
** with the count returned) */
GLR_INTERNAL int lhttp_push_upvalues(lua_State *L);
/* the field lines of a head as its parse scanned them, kept for
** lhttp_relay_fields (so the head is scanned once): their spans in the
** head's bytes, n of them; n -1: more than LHTTP_RELAY_MAX (relay declines
** such a head) */
#define LHTTP_RELAY_MAX 256
typedef struct lhttp_span {
  size_t n0, nlen, v0, vlen; /* name b[n0 .. n0 + nlen), value b[v0 .. v0 + vlen) */
} lhttp_span;
typedef struct lhttp_fields {
  int n;
  lhttp_span f[LHTTP_RELAY_MAX];
} lhttp_fields;
/* lhttp_response_head — parse the whole response head b[0 .. n) (status
** line, at most max field lines, the empty line; `only` at stack index
** only_idx, 0: none, as httpparse.response's): 0 with major, minor, status,
** reason, headers pushed; else LHTTP_BAD_STATUS or LHTTP_BAD_FIELDS (some
** values may be pushed: the caller resets its stack). keep (or NULL): the
** field lines' spans, for lhttp_relay_fields */
enum { LHTTP_BAD_STATUS = 1, LHTTP_BAD_FIELDS = 2 };
GLR_INTERNAL int lhttp_response_head(lua_State *L, const char *b, size_t n, lua_Integer max,
                                     int only_idx, lhttp_fields *keep);
/* lhttp_response_spans — lhttp_response_head without a headers table:
** the status line's parts in *st, the field lines' spans in keep (more
** than LHTTP_RELAY_MAX, or than max: LHTTP_BAD_FIELDS); pushes nothing.
** A head it refuses may still be one lhttp_response_head takes (1xx
** skipping aside, the caller parses it so then, for the error's words) */
typedef struct lhttp_status {
  unsigned char major, minor; /* '0'..'9' */
  int code;
} lhttp_status;
GLR_INTERNAL int lhttp_response_spans(const char *b, size_t n, lua_Integer max,
                                      lhttp_status *st, lhttp_fields *keep);
/* lhttp_relay_answer — pushes one string: the relayed lines of the head b
** whose spans are keep (as lhttp_relay_fields makes them, drop set at
** drop_idx), "Content-Length: N\r\n\r\n" and the body body[0 .. bodyn):
** a proxy's answer after its status line and Date (keep->n >= 0) */
GLR_INTERNAL void lhttp_relay_answer(lua_State *L, const char *b, const lhttp_fields *keep,
                                     int drop_idx, const char *body, size_t bodyn);
/* lhttp_relay_fields — pushes what httpparse.relay(b, 1, drop) gives for
** the head b whose parse kept `keep` (drop set at stack index drop_idx):
** its lines and seen bits, or nil, 0 where relay declines; no field line
** is scanned again */
GLR_INTERNAL void lhttp_relay_fields(lua_State *L, const char *b, const lhttp_fields *keep,
                                     int drop_idx);
/* lhttp_has_token — the comma/space-separated list v[0 .. vn) names the
** lower-case token tok, in any case */
GLR_INTERNAL bool lhttp_has_token(const char *v, size_t vn, const char *tok);
/* lhttp_same_ci — a[0 .. n) is the lower-case l in any case */
GLR_INTERNAL bool lhttp_same_ci(const char *a, const char *l, size_t n);
/* lhttp_is_token — s[0 .. n) is a non-empty RFC 9110 token */
GLR_INTERNAL bool lhttp_is_token(const char *s, size_t n);

#endif
