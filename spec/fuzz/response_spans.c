/* response_spans.c — libFuzzer target: the span-only answer parse of
** http.proxy's fast path (bindings/lhttp.c) against the table parse it
** stands in for, on arbitrary bytes as a response head.
**
** lhttp_response_spans(head) accepting means lhttp_response_head (with an
** lhttp_fields keep, as httpread.readresponse calls it) accepts too, with
** the same major, minor and status code and the same kept spans; the
** head parse accepting means the span parse does too, unless the head has
** more field lines than LHTTP_RELAY_MAX (its keep n -1). On an accepted
** head, lhttp_relay_answer(spans, drop, body) is exactly
** lhttp_relay_fields(head's keep, drop)'s lines .. "Content-Length: N"
** CRLF CRLF .. body, for the drop sets "date,server", nil and the table
** {connection, x-a}. The head is copied into a buffer of its own size, so
** ASan sees a read past its end. Any other outcome aborts.
** Input: byte 0 picks max_headers (1..7, 100, or 300: past the spans'
** 256), byte 1 the body's length (taken from the input's end), the rest
** is the head then the body. One Lua state for the run; single-threaded.
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;

/* this input: the head, the body, max_headers; the two parses' results */
static const char *head, *body;
static size_t headn, bodyn;
static lua_Integer max;
static lhttp_fields by_spans, by_head;
static lhttp_status st;

static void fail(const char *what) {
  fprintf(stderr, "response_spans: %s\n", what);
  abort();
}

static bool same_spans(const lhttp_fields *a, const lhttp_fields *b) {
  if (a->n != b->n) return false;
  for (int i = 0; i < a->n; i++)
    if (memcmp(&a->f[i], &b->f[i], sizeof a->f[i]) != 0) return false;
  return true;
}

/* the head parse's status line (on the stack from 1) is st's */
static void check_status(lua_State *Ls) {
  const char *major = lua_tostring(Ls, 1), *minor = lua_tostring(Ls, 2);
  if (!major || !minor || major[0] != (char)st.major || minor[0] != (char)st.minor)
    fail("another version than the span parse's");
  if (!lua_isinteger(Ls, 3) || lua_tointeger(Ls, 3) != st.code)
    fail("another status code than the span parse's");
}

/* both parses of the head (in a C closure with the parser's upvalues,
** as httpread's are): whether they accepted it */
static int both_parses(lua_State *Ls) {
  lua_settop(Ls, 0); /* (the argument: none) */
  int spans = lhttp_response_spans(head, headn, max, &st, &by_spans);
  int table = lhttp_response_head(Ls, head, headn, max, 0, &by_head);
  if (spans == 0 && table != 0) fail("the span parse accepts a head the table parse refuses");
  if (table == 0 && spans != 0 && by_head.n >= 0)
    fail("the span parse refuses a head of at most 256 lines the table parse accepts");
  if (spans == 0) {
    check_status(Ls);
    if (!same_spans(&by_spans, &by_head)) fail("other spans than the table parse's");
  }
  lua_pushboolean(Ls, spans == 0);
  return 1;
}

/* the drop set at 1: relay_fields(head's keep) .. the Content-Length
** line .. body, and relay_answer(spans' keep) */
static int both_answers(lua_State *Ls) {
  lhttp_relay_fields(Ls, head, &by_head, 1); /* 2: lines, 3: seen */
  if (lua_isnil(Ls, 2)) fail("relay_fields declined a head of at most 256 lines");
  lua_pushfstring(Ls, "Content-Length: %I\r\n\r\n", (lua_Integer)bodyn);
  lua_pushlstring(Ls, body, bodyn);
  lua_concat(Ls, 2);
  lua_pushvalue(Ls, 2);
  lua_insert(Ls, -2);
  lua_concat(Ls, 2); /* 4: the expected answer */
  lhttp_relay_answer(Ls, head, &by_spans, 1, body, bodyn);
  if (!lua_rawequal(Ls, 4, 5)) fail("relay_answer differs from relay_fields' lines and the body");
  return 0;
}

/* calls f (a closure with the parser's upvalues) on the value on the top */
static void run(lua_CFunction f, int nres) {
  lua_pushcclosure(L, f, lhttp_push_upvalues(L));
  lua_insert(L, -2);
  if (lua_pcall(L, 1, nres, 0) != LUA_OK) fail(lua_tostring(L, -1));
}

static void answers(void) {
  lua_pushliteral(L, "date,server");
  run(both_answers, 0);
  lua_pushnil(L);
  run(both_answers, 0);
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "connection");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "x-a");
  run(both_answers, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!L) {
    L = luaL_newstate();
    if (!L) fail("no Lua state");
  }
  if (size < 2) return 0;
  static const lua_Integer maxes[] = {100, 1, 2, 3, 4, 5, 6, 300};
  max = maxes[data[0] % 8];
  size_t n = size - 2;
  bodyn = data[1] % (n + 1);
  headn = n - bodyn;
  char *copy = malloc(headn ? headn : 1); /* (its own size: ASan's bounds) */
  if (!copy) fail("out of memory");
  memcpy(copy, data + 2, headn);
  head = copy;
  body = (const char *)data + 2 + headn;
  lua_pushnil(L);
  run(both_parses, 1);
  bool accepted = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (accepted) answers();
  free(copy);
  lua_gc(L, LUA_GCCOLLECT); /* (this input's garbage: see httpparse.c) */
  return 0;
}
