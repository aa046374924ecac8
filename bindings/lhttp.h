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
/* lhttp_response_head — parse the whole response head b[0 .. n) (status
** line, at most max field lines, the empty line; `only` at stack index
** only_idx, 0: none, as httpparse.response's): 0 with major, minor, status,
** reason, headers pushed; else LHTTP_BAD_STATUS or LHTTP_BAD_FIELDS (some
** values may be pushed: the caller resets its stack) */
enum { LHTTP_BAD_STATUS = 1, LHTTP_BAD_FIELDS = 2 };
GLR_INTERNAL int lhttp_response_head(lua_State *L, const char *b, size_t n, lua_Integer max,
                                     int only_idx);
/* lhttp_has_token — the comma/space-separated list v[0 .. vn) names the
** lower-case token tok, in any case */
GLR_INTERNAL bool lhttp_has_token(const char *v, size_t vn, const char *tok);
/* lhttp_same_ci — a[0 .. n) is the lower-case l in any case */
GLR_INTERNAL bool lhttp_same_ci(const char *a, const char *l, size_t n);
/* lhttp_relay — httpparse.relay(s [, pos [, drop]]) -> lines, seen, next
** | nil, as a lua_CFunction (httpread.readresponse calls it on the head it
** read when asked) */
GLR_INTERNAL int lhttp_relay(lua_State *L);
/* lhttp_is_token — s[0 .. n) is a non-empty RFC 9110 token */
GLR_INTERNAL bool lhttp_is_token(const char *s, size_t n);

#endif
