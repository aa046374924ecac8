/*
** lhttp.c — goluarun.httpparse: HTTP/1.1 heads parsed in one C call, the
** grammar of lua/goluarun/http.lua (its LPeg patterns are the reference;
** this is their drop-in: the same captures for the same bytes, or nil
** where they do not match). The protocol logic (framing, keep-alive,
** limits' statuses) stays in Lua; only the byte loops are here.
**
**   httpparse.request(s [, pos [, max_headers]])
**     -> method, path, query|nil, major, minor, headers, next, plain | nil
**   httpparse.response(s [, pos [, max_headers [, only]]])
**     -> major, minor, status, reason, headers, next | nil
**
** pos: where the head starts (1-based, default 1); next: the position
** after its empty line. max_headers (default 100): more field lines than
** that do not match. Request heads may start with empty lines (skipped);
** a line ends with LF or CRLF; field names are lower-cased; a repeated
** field is joined with ", " (request) or becomes a list (response). No
** obs-fold, no bare CR, no control characters (RFC 9112 5, 2.2).
** only (response): a set of lower-case names (name -> true); the fields
** not in it are checked as usual but left out of headers (a proxy relays
** the head from its bytes and needs only the framing fields as values).
** plain (request): true when the server has no framing decision to make:
** HTTP/1.1, a target starting with "/", one Host field without a comma,
** and no Connection, Content-Length, Transfer-Encoding or Expect field
** (the server's fast path: a hello request skips all those lookups).
**
**   httpparse.block(h [, except [, own]]) -> lines, seen, connection
**                                          | nil, "name" | "value", key
**
** The other direction: the field lines "name: value\r\n" of a headers
** table (name -> string, number or a list of them; names as given), in
** one call, for the client's request heads and the server's res:headers.
** Names whose lower case is a key of `except` are skipped; those of `own`
** are skipped too but still reported in `seen`, a bit set of the names
** met (BLOCK_HOST 1, BLOCK_UA 2, BLOCK_CTYPE 4, BLOCK_DATE 8); connection
** is the Connection field's value as given (or nil). A name that is not a
** token, or a value that is not a string or number or holds CR, LF or
** NUL: nil, what, the key (the caller raises with its own words).
**
**   httpparse.relay(s [, pos [, drop [, tail...]]]) -> lines, seen, next | nil
**
** A proxy's step: the field lines of the head at s:sub(pos) as they go on
** to the next hop, in one call over the received bytes. The head starts
** with a start line (request or status line, leading empty lines skipped;
** not checked: the caller parsed it) or directly with its field lines,
** and ends with an empty line (or the end of s). Each field line is
** checked as the parsers do (nil if one is not a field line) and kept
** byte for byte with its name's case as received ("Name: value
"),
** minus the hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection,
** TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
** Proxy-Authorization), Content-Length (the sender frames the body), the
** names any Connection field lists, and the names whose lower case is a
** key of drop (a table; or a string of up to 16 comma-separated lower-case
** names, "date,server": read without a table walk per call). seen: the
** BLOCK_ bits of the lines kept; next: the position after the head. More
** than RELAY_MAX_FIELDS (256) field lines: nil. tail: strings appended to
** lines as they are (a proxy's own lines, not checked, not in seen): one
** string made, no concatenation after the call.
**
**   httpparse.lines(s) -> seen | nil
**
** Whether s is field lines exactly as relay writes them ("Name: value\r\n"
** each, checked as the parsers do, no OWS around the value) with none that
** relay leaves out: then relay(s) is s, and seen its BLOCK_ bits; nil:
** ask relay. The HTTP client takes req.fields so without copying them.
**
** Each Lua state's httpparse keeps (hp_keep) the field spans of the last
** request head `request` parsed, and `relay` of that very string at the
** same position writes its lines from them (the head is scanned once: the
** server parses it, a proxy relays it); it also keeps its last result,
** and `lines` of that very string checks only the tail strings after
** relay's own lines (relay wrote those from checked spans, each line as
** lines accepts it; the tail is the caller's: checked, so a tail cannot
** smuggle a line in with a CR or LF). "Very string": the kept string is
** referenced (a user value), so a pointer compare cannot be fooled by
** another string at a reused address; any other string is scanned.
** Results are the same either way (spec/httpparse_spec.lua compares).
**
** lhttp.h also gives lhttpread.c (the client's answer head read from a
** conn) the response parser: lhttp_response_head, lhttp_push_upvalues,
** and relay's lines made from the spans that parse kept (lhttp_fields,
** lhttp_relay_fields): the head's field lines are scanned once.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lhttp.h"

#define DEFAULT_MAX_HEADERS 100

/* a cursor over the bytes s[p .. n) */
typedef struct hp_cur {
  const unsigned char *s;
  size_t p, n;
} hp_cur;

/* tchar (RFC 9110 5.6.2): the bytes of a token: DIGIT, ALPHA and
** !#$%&'*+-.^_`|~ (a table: the parser's innermost loop); 128..255 are 0 */
static const unsigned char TCHAR[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
};

static bool is_tchar(unsigned c) { return TCHAR[c & 255] != 0; }

static bool is_vchar(unsigned c) { return c >= 33 && c <= 126; }
/* field-vchar (RFC 9110 5.5): VCHAR / obs-text, 33..126 and 128..255 (a
** table: the loop over a value's bytes) */
static const unsigned char FCHAR[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
static bool is_fchar(unsigned c) { return FCHAR[c & 255] != 0; }
static bool is_ws(unsigned c) { return c == ' ' || c == '\t'; }
static bool is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static bool at(const hp_cur *c, unsigned ch) { return c->p < c->n && c->s[c->p] == ch; }

static bool eat(hp_cur *c, unsigned ch) {
  if (!at(c, ch)) return false;
  c->p++;
  return true;
}

/* the literal lit (a macro: sizeof is its length; memcmp of a constant
** length compiles to a few compares) */
#define eat_lit(c, lit) eat_bytes((c), (lit), sizeof(lit) - 1)
static bool eat_bytes(hp_cur *c, const char *lit, size_t n) {
  if (c->n - c->p < n || memcmp(c->s + c->p, lit, n) != 0) return false;
  c->p += n;
  return true;
}

/* EOL = "\r"? "\n" */
static bool eat_eol(hp_cur *c) {
  size_t p = c->p, n = c->n; /* (locals: c->s's bytes may alias c->p) */
  if (p < n && c->s[p] == '\r') p++;
  if (p == n || c->s[p] != '\n') return false;
  c->p = p + 1;
  return true;
}

/* the end of the run of tchars from s[p] (at most n): four table lookups
** a step, then one at a time */
static inline size_t token_end(const unsigned char *s, size_t p, size_t n) {
  while (n - p >= 4 && (TCHAR[s[p]] & TCHAR[s[p + 1]] & TCHAR[s[p + 2]] & TCHAR[s[p + 3]])) p += 4;
  while (p < n && is_tchar(s[p])) p++;
  return p;
}

static size_t span_token(hp_cur *c) {
  size_t p0 = c->p;
  c->p = token_end(c->s, p0, c->n);
  return c->p - p0;
}

/* a DIGIT, kept as its byte */
static bool eat_digit(hp_cur *c, unsigned char *d) {
  if (c->p >= c->n || !is_digit(c->s[c->p])) return false;
  *d = c->s[c->p++];
  return true;
}

#define NAME_STACK 64

static void lower_into(char *d, const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned ch = s[i];
    d[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
  }
}

/* pushes s[0 .. n) lower-cased (names are ASCII tokens) */
static void push_lower(lua_State *L, const unsigned char *s, size_t n) {
  if (n <= NAME_STACK) {
    char d[NAME_STACK];
    lower_into(d, s, n);
    lua_pushlstring(L, d, n);
    return;
  }
  luaL_Buffer b;
  lower_into(luaL_buffinitsize(L, &b, n), s, n);
  luaL_pushresultsize(&b, n);
}

/* ---------- a word at a time ---------- */

/* Eight bytes in a uint64_t (memcpy: no unaligned access, no aliasing);
** the tests below look at each byte alone (no carry crosses a byte), so
** they hold whatever the byte order. A byte's result is its high bit. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS (ONES * 0x80)
#define LOW7S (ONES * 0x7F)

static uint64_t load8(const unsigned char *s) {
  uint64_t w;
  memcpy(&w, s, 8);
  return w;
}

/* 0x80 in each byte of w below 0x20 or equal to 0x7F: the bytes outside
** the value bytes' fast case (value_byte below; HTAB, rare, is taken a
** byte at a time). With b7 = b & 0x7F: b7 + 0x60 reaches 0x80 when b7 >=
** 0x20 (| b: a byte >= 0x80 is not below 0x20); b7 + 1 reaches 0x80 only
** for b7 == 0x7F (& ~b: and b < 0x80). Neither sum leaves its byte. */
static uint64_t odd_bytes(uint64_t w) {
  uint64_t low7 = w & LOW7S;
  uint64_t below_space = ~((low7 + ONES * 0x60) | w);
  uint64_t del = (low7 + ONES) & ~w;
  return (below_space | del) & HIGHS;
}

/* the place in memory of the first byte m flags (m not 0) */
static size_t first_flagged(uint64_t m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (size_t)__builtin_clzll(m) / 8;
#else
  return (size_t)__builtin_ctzll(m) / 8;
#endif
}

/* a field value's byte, OWS included: field-vchar (FCHAR), SP or HTAB:
** 0x09, 0x20 .. 0x7E, 0x80 .. 0xFF */
static bool value_byte(unsigned c) { return is_fchar(c) || is_ws(c); }

/* the end of the run of value bytes from s[p] (at most n): eight bytes a
** step, the first odd byte of a word found in it (an HTAB there is passed
** over: a value byte); the last seven bytes of s one at a time */
static inline size_t span_value_bytes(const unsigned char *s, size_t p, size_t n) {
  while (n - p >= 8) {
    uint64_t m = odd_bytes(load8(s + p));
    if (!m) {
      p += 8;
      continue;
    }
    p += first_flagged(m);
    if (s[p] != '\t') return p;
    p++;
  }
  while (p < n && value_byte(s[p])) p++;
  return p;
}

/* ---------- name sets ---------- */

#define SET_KEYS 16

/* the lower-case names of a set: a Lua table (name -> true) or a string of
** names separated by commas ("date,server"), read once per call so that a
** name is looked up without making a Lua string: n of them (0: none), or
** -1 (a table of more than SET_KEYS: looked up in the table). The table or
** string (at idx) keeps the key bytes alive. */
typedef struct hp_names {
  int n, idx;
  uint64_t lens; /* bit min(length, 63) of each name read: a first filter */
  const char *k[SET_KEYS];
  size_t kn[SET_KEYS];
} hp_names;

static uint64_t len_bit(size_t n) { return (uint64_t)1 << (n < 63 ? n : 63); }

/* a string set: its comma-separated names (empty ones skipped); more than
** SET_KEYS is the caller's error */
static void names_split(lua_State *L, int idx, hp_names *d) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n), *e = s + n;
  while (s < e) {
    const char *c = memchr(s, ',', (size_t)(e - s));
    if (!c) c = e;
    if (c > s) {
      if (d->n == SET_KEYS) luaL_error(L, "httpparse: more than %d names in a set string", SET_KEYS);
      d->k[d->n] = s;
      d->kn[d->n++] = (size_t)(c - s);
      d->lens |= len_bit((size_t)(c - s));
    }
    s = c + 1;
  }
}

static void names_read(lua_State *L, int idx, hp_names *d) {
  d->n = 0;
  d->lens = 0;
  d->idx = idx;
  if (lua_type(L, idx) == LUA_TSTRING) {
    names_split(L, idx, d);
    return;
  }
  if (lua_isnoneornil(L, idx)) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) continue;
    if (d->n == SET_KEYS) {
      lua_pop(L, 1);
      d->n = -1;
      return;
    }
    d->k[d->n] = lua_tolstring(L, -1, &d->kn[d->n]);
    d->lens |= len_bit(d->kn[d->n++]);
  }
}

/* whether the lower-case name l[0 .. n) is in the set */
static bool names_has(lua_State *L, const hp_names *d, const char *l, size_t n) {
  if (d->n >= 0) {
    for (int i = 0; i < d->n; i++)
      if (d->kn[i] == n && memcmp(d->k[i], l, n) == 0) return true;
    return false;
  }
  lua_pushlstring(L, l, n);
  bool in = lua_rawget(L, d->idx) != LUA_TNIL;
  lua_pop(L, 1);
  return in;
}

static bool same_ci(const unsigned char *a, const char *l, size_t n);

/* names_has_ci for a table too big to read: the name lowered, looked up */
static bool names_in_table(lua_State *L, const hp_names *d, const unsigned char *s, size_t n) {
  if (n > NAME_STACK) {
    push_lower(L, s, n);
    bool in = names_has(L, d, lua_tostring(L, -1), n);
    lua_pop(L, 1);
    return in;
  }
  char l[NAME_STACK];
  lower_into(l, s, n);
  return names_has(L, d, l, n);
}

/* whether the name s[0 .. n) (any case) is in the set: compared in place
** (most names are told apart by their length alone), lowered only for a
** table too big to read */
static inline bool names_has_ci(lua_State *L, const hp_names *d, const unsigned char *s, size_t n) {
  if (d->n < 0) return names_in_table(L, d, s, n);
  if (!(d->lens & len_bit(n))) return false;
  for (int i = 0; i < d->n; i++)
    if (d->kn[i] == n && same_ci(s, d->k[i], n)) return true;
  return false;
}

/* ---------- interned strings ---------- */

/* The strings most heads hold, pushed from the module's upvalues instead of
** being hashed and looked up in the string table on every request: common
** field names (lower case), the methods, the ten digits. */
typedef struct hp_word {
  const char *s;
  size_t n;
} hp_word;
#define W(lit) {lit, sizeof lit - 1}
static const hp_word COMMON_NAME[] = {
    W("host"), W("user-agent"), W("accept"), W("accept-encoding"), W("accept-language"),
    W("connection"), W("content-length"), W("content-type"), W("transfer-encoding"),
    W("expect"), W("cookie"), W("authorization"), W("upgrade"), W("referer"),
    W("cache-control"), W("origin"), W("date"), W("server"), W("keep-alive"), W("location"),
    W("set-cookie"), W("last-modified"), W("etag"), W("vary"), W("content-encoding"),
    W("x-forwarded-for"), W("if-none-match"), W("if-modified-since"), W("sec-websocket-key"),
    W("sec-websocket-version"),
};
#define N_NAMES ((int)(sizeof COMMON_NAME / sizeof COMMON_NAME[0]))
_Static_assert(N_NAMES <= 32, "hp_acc.common has a bit per common name");
/* the upvalues (COMMON_NAME positions + 1) of the names a request's
** framing depends on (the `plain` result of httpparse.request) */
#define NAME_HOST 1
#define NAME_CONNECTION 6
#define NAME_CONTENT_LENGTH 7
#define NAME_TRANSFER_ENCODING 9
#define NAME_EXPECT 10
static const hp_word COMMON_METHOD[] = {
    W("GET"), W("POST"), W("HEAD"), W("PUT"), W("DELETE"), W("OPTIONS"), W("PATCH"),
};
#define N_METHODS ((int)(sizeof COMMON_METHOD / sizeof COMMON_METHOD[0]))
/* upvalue numbers: names 1.., then methods, then the digits '0'..'9' */
#define UP_METHOD (N_NAMES + 1)
#define UP_DIGIT (UP_METHOD + N_METHODS)
#define N_UP (UP_DIGIT + 9) /* the last upvalue: digit 9 */
#define UP_KEEP (N_UP + 1)   /* httpparse's own functions only: the hp_keep */

static unsigned ascii_lower(unsigned ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

/* w with its bytes 'A' .. 'Z' lowered: with b7 = b & 0x7F, b7 + 0x3F
** reaches 0x80 from 'A' on, b7 + 0x25 from '[' on (& ~w: and b < 0x80);
** such a byte gets 0x20 (its flag moved down two bits) */
static uint64_t lower_word(uint64_t w) {
  uint64_t low7 = w & LOW7S;
  uint64_t from_a = low7 + ONES * (0x80 - 'A'), past_z = low7 + ONES * (0x80 - 'Z' - 1);
  return w | ((from_a & ~past_z & ~w & HIGHS) >> 2);
}

/* four bytes, zero-extended (a zero byte is not lowered: lower_word fits) */
static uint64_t load4(const unsigned char *s) {
  uint32_t w;
  memcpy(&w, s, 4);
  return w;
}

/* a word at a time where n allows (the last word may overlap the one
** before: its bytes compare the same twice); l is read in [0, n) only */
static bool same_ci(const unsigned char *a, const char *l, size_t n) {
  const unsigned char *b = (const unsigned char *)l;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (lower_word(load8(a + i)) != load8(b + i)) return false;
    return lower_word(load8(a + n - 8)) == load8(b + n - 8);
  }
  if (n >= 4)
    return lower_word(load4(a)) == load4(b) && lower_word(load4(a + n - 4)) == load4(b + n - 4);
  for (size_t i = 0; i < n; i++)
    if (ascii_lower(a[i]) != b[i]) return false;
  return true;
}

/* the upvalue of the common string equal to s[0 .. n) (exactly, or in any
** case when ci: the list is in lower case), or 0 */
static int common_index(const hp_word *list, int k, const unsigned char *s, size_t n, bool ci) {
  if (n == 0) return 0;
  unsigned c0 = ci ? ascii_lower(s[0]) : s[0]; /* (a first filter) */
  for (int i = 0; i < k; i++) {
    const hp_word *w = &list[i];
    if (w->n != n || (unsigned char)w->s[0] != c0) continue;
    if (ci ? same_ci(s, w->s, n) : memcmp(s, w->s, n) == 0) return i + 1;
  }
  return 0;
}

/* pushes a field name lower-cased (the common ones from the upvalues);
** returns its upvalue, or 0 */
static int push_name(lua_State *L, const unsigned char *s, size_t n) {
  int i = common_index(COMMON_NAME, N_NAMES, s, n, true);
  if (i) lua_pushvalue(L, lua_upvalueindex(i));
  else push_lower(L, s, n);
  return i;
}

static void push_method(lua_State *L, const unsigned char *s, size_t n) {
  int i = common_index(COMMON_METHOD, N_METHODS, s, n, false);
  if (i) lua_pushvalue(L, lua_upvalueindex(UP_METHOD + i - 1));
  else lua_pushlstring(L, (const char *)s, n);
}

static void push_digit(lua_State *L, unsigned char d) {
  lua_pushvalue(L, lua_upvalueindex(UP_DIGIT + (d - '0')));
}

/* ---------- field lines ---------- */

/* a field line's name and value: s[n0 .. n0 + nlen), s[v0 .. v0 + vlen) */
typedef lhttp_span hp_field;

/* what this Lua state's last request parse and last relay leave for a
** later call on the very same string (the upvalue UP_KEEP, a userdata):
** a request head's field spans, for relay of that head (so it is scanned
** once), and relay's last lines, whose own part lines need not check
** again. Each string is the userdata's user value (1: head, 2: lines),
** so it stays alive and its address is its own: a pointer compare tells
** the same string, never an equal-looking other one. */
typedef struct hp_keep {
  const char *head;     /* the head parsed last (user value 1), or NULL */
  size_t hpos, hnext;   /* where its parse started and ended (0-based) */
  lhttp_fields spans;   /* its field lines */
  const char *lines;    /* relay's last lines (user value 2), or NULL */
  size_t lown;          /* their first lown bytes are relay's own lines */
  int lseen;            /* and those lines' seen bits */
} hp_keep;

static hp_keep *keep_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(UP_KEEP)); }

/* s (at stack index idx) is the keep's user value uv, for a later call */
static void keep_string(lua_State *L, int idx, int uv) {
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, lua_upvalueindex(UP_KEEP), uv);
}

#define FIELD_BATCH 32 /* field lines scanned before the table is made */

/* field-line = name ":" OWS value OWS EOL at s[p ..) (at most n): its
** spans into x, and the position after its EOL; 0 if it is not one (a
** field line holds at least three bytes).
** The value: the grammar's loop (OWS, then runs of field-vchars separated
** by SP/HTAB runs, then OWS) consumes exactly the longest run of value
** bytes after the leading OWS: a run only stops at a byte that is neither
** a field-vchar nor SP/HTAB, or at the end. The value ends after its last
** field-vchar, that is at the run's end moved back over the SP/HTAB bytes
** before it; it cannot move back past v0, where the run holds a
** field-vchar (the leading OWS was skipped) or the run is empty. */
static size_t field_line(const unsigned char *s, size_t p, size_t n, hp_field *x) {
  size_t n0 = p;
  p = token_end(s, p, n);
  if (p == n0 || p == n || s[p] != ':') return 0;
  x->n0 = n0;
  x->nlen = p - n0;
  p++;
  while (p < n && is_ws(s[p])) p++;
  size_t v0 = p, v1 = p = span_value_bytes(s, p, n);
  while (v1 > v0 && is_ws(s[v1 - 1])) v1--;
  x->v0 = v0;
  x->vlen = v1 - v0;
  if (p < n && s[p] == '\r') p++;
  return p < n && s[p] == '\n' ? p + 1 : 0;
}

/* a field line at the cursor: its spans, the cursor after it; false
** (cursor unmoved) if the line is not one */
static bool field_span(hp_cur *c, hp_field *x) {
  size_t e = field_line(c->s, c->p, c->n, x);
  if (e) c->p = e;
  return e != 0;
}

/* up to cap field lines, and no more than *left (counted down) */
static int scan_fields(hp_cur *c, hp_field *f, int cap, lua_Integer *left) {
  int nf = 0;
  while (nf < cap && *left > 0 && field_span(c, &f[nf])) {
    nf++;
    (*left)--;
  }
  return nf;
}

/* t[k] = v, or old .. ", " .. v (t, k, v on the top; pops k, v) */
static void fold_join(lua_State *L) {
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -4) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_rawset(L, -3);
    return;
  }
  lua_pushliteral(L, ", ");
  lua_pushvalue(L, -3);
  lua_concat(L, 3);
  lua_replace(L, -2);
  lua_rawset(L, -3);
}

/* t[k] = v, or a list of the values (t, k, v on the top; pops k, v) */
static void fold_list(lua_State *L) {
  lua_pushvalue(L, -2);
  int old = lua_rawget(L, -4);
  if (old == LUA_TNIL) {
    lua_pop(L, 1);
    lua_rawset(L, -3);
  } else if (old == LUA_TTABLE) {
    lua_insert(L, -2);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 2);
  } else {
    lua_createtable(L, 2, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 2);
    lua_rawset(L, -3);
  }
}

/* a request's fields as its framing sees them (hp_request's `plain`) */
#define SEEN_HOST 1u /* a Host field */
#define SEEN_ODD 2u  /* a second Host, a comma in Host, or a field that
                     ** changes the framing: Connection, Content-Length,
                     ** Transfer-Encoding, Expect */

/* the SEEN_ bits the field at upvalue i (0: not a common name) adds to seen */
static unsigned seen_field(unsigned seen, int i, const unsigned char *v, size_t vn) {
  switch (i) {
  case NAME_HOST:
    return (seen & SEEN_HOST) || memchr(v, ',', vn) ? SEEN_HOST | SEEN_ODD : SEEN_HOST;
  case NAME_CONNECTION:
  case NAME_CONTENT_LENGTH:
  case NAME_TRANSFER_ENCODING:
  case NAME_EXPECT:
    return SEEN_ODD;
  default:
    return 0;
  }
}

/* what a head's fields told so far: the SEEN_ bits (requests), and the
** common names already in the table (bit i - 1: COMMON_NAME's upvalue i) */
typedef struct hp_acc {
  unsigned seen;
  uint32_t common;
} hp_acc;

/* sets the field x in the headers table on the top (the name lower-cased;
** with a set `only`, a name not in it is passed over), noting it in acc.
** A common name met for the first time is stored without looking for an
** earlier value (the fold's rawget) */
static void add_field(lua_State *L, const hp_cur *c, const hp_field *x, bool list,
                      const hp_names *only, hp_acc *acc) {
  if (only && !names_has_ci(L, only, c->s + x->n0, x->nlen)) return;
  int i = push_name(L, c->s + x->n0, x->nlen);
  acc->seen |= seen_field(acc->seen, i, c->s + x->v0, x->vlen);
  lua_pushlstring(L, (const char *)c->s + x->v0, x->vlen);
  uint32_t bit = i ? (uint32_t)1 << (i - 1) : 0;
  if (bit && !(acc->common & bit)) {
    acc->common |= bit;
    lua_rawset(L, -3);
  } else if (list) {
    fold_list(L);
  } else {
    fold_join(L);
  }
}

/* up to max field lines then the empty line: pushes the headers table and
** returns true, or false (the table may be pushed: the caller returns nil).
** The lines are scanned before the table is made, so that it is made with
** room for as many fields as there are (a batch at a time): no rehash,
** and no more memory than the head needs (the GC's work follows it).
** keep (or NULL): the first batch is all LHTTP_RELAY_MAX lines, their
** spans kept there for the head's relayed lines (a line past those: -1) */
static bool fields(lua_State *L, hp_cur *c, lua_Integer max, bool list, const hp_names *only,
                   hp_acc *acc, lhttp_fields *keep) {
  hp_field batch[FIELD_BATCH], *f = keep ? keep->f : batch;
  int cap = keep ? LHTTP_RELAY_MAX : FIELD_BATCH;
  lua_Integer left = max;
  int nf = scan_fields(c, f, cap, &left);
  if (keep) keep->n = nf;
  lua_createtable(L, 0, only ? (nf < 2 ? nf : 2) : nf);
  for (;;) {
    for (int i = 0; i < nf; i++) add_field(L, c, &f[i], list, only, acc);
    if (nf < cap) break;
    f = batch;
    cap = FIELD_BATCH;
    nf = scan_fields(c, f, cap, &left);
    if (keep && nf > 0) keep->n = -1;
  }
  return eat_eol(c);
}

/* the end of the run of VCHARs other than stop from s[p] (at most n) */
static size_t vchars_end(const unsigned char *s, size_t p, size_t n, unsigned char stop) {
  while (p < n && is_vchar(s[p]) && s[p] != stop) p++;
  return p;
}

/* request-line = method SP target SP "HTTP/" DIGIT "." DIGIT EOL; pushes
** method, path, query|nil, major, minor; *plain: HTTP/1.1 and an
** origin-form target (it starts with "/") */
static bool request_line(lua_State *L, hp_cur *c, bool *plain) {
  size_t m0 = c->p, mlen = span_token(c);
  if (mlen == 0 || !eat(c, ' ')) return false;
  size_t t0 = c->p, t1 = vchars_end(c->s, t0, c->n, '?'), q0 = 0, q1 = 0;
  if (t1 == t0) return false;
  c->p = t1;
  if (eat(c, '?')) {
    q0 = c->p;
    q1 = c->p = vchars_end(c->s, q0, c->n, 0);
  }
  unsigned char major, minor;
  if (!eat_lit(c, " HTTP/") || !eat_digit(c, &major) || !eat(c, '.') ||
      !eat_digit(c, &minor) || !eat_eol(c))
    return false;
  *plain = major == '1' && minor == '1' && c->s[t0] == '/';
  push_method(L, c->s + m0, mlen);
  lua_pushlstring(L, (const char *)c->s + t0, t1 - t0);
  if (q0) lua_pushlstring(L, (const char *)c->s + q0, q1 - q0);
  else lua_pushnil(L);
  push_digit(L, major);
  push_digit(L, minor);
  return true;
}

/* status-line = "HTTP/" DIGIT "." DIGIT SP 3DIGIT [SP reason] EOL: its
** parts in *st, the reason c->s[*r0 .. *r1) */
static bool status_scan(hp_cur *c, lhttp_status *st, size_t *r0, size_t *r1) {
  unsigned char d[3];
  if (!eat_lit(c, "HTTP/") || !eat_digit(c, &st->major) || !eat(c, '.') ||
      !eat_digit(c, &st->minor) || !eat(c, ' ') || !eat_digit(c, &d[0]) ||
      !eat_digit(c, &d[1]) || !eat_digit(c, &d[2]))
    return false;
  *r0 = *r1 = c->p;
  if (eat(c, ' ')) {
    *r0 = c->p;
    c->p = span_value_bytes(c->s, c->p, c->n);
    *r1 = c->p;
  }
  st->code = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
  return eat_eol(c);
}

/* the status line; pushes major, minor, status, reason */
static bool status_line(lua_State *L, hp_cur *c) {
  lhttp_status st;
  size_t r0, r1;
  if (!status_scan(c, &st, &r0, &r1)) return false;
  push_digit(L, st.major);
  push_digit(L, st.minor);
  lua_pushinteger(L, st.code);
  lua_pushlstring(L, (const char *)c->s + r0, r1 - r0);
  return true;
}

/* the arguments: the cursor at pos, and max_headers */
static hp_cur check_args(lua_State *L, lua_Integer *max) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_Integer pos = luaL_optinteger(L, 2, 1);
  *max = luaL_optinteger(L, 3, DEFAULT_MAX_HEADERS);
  luaL_argcheck(L, pos >= 1, 2, "position must be >= 1");
  luaL_argcheck(L, *max >= 0, 3, "max_headers must be >= 0");
  hp_cur c = { (const unsigned char *)s, (size_t)pos - 1, n };
  if (c.p > n) c.p = n;
  return c;
}

/* (the head's field spans are kept for relay: hp_keep) */
static int hp_request(lua_State *L) {
  lua_Integer max;
  hp_cur c = check_args(L, &max);
  hp_keep *k = keep_of(L);
  k->head = NULL; /* (its spans are overwritten now) */
  size_t p0 = c.p;
  while (c.p < c.n && (c.s[c.p] == '\r' || c.s[c.p] == '\n')) c.p++;
  bool plain;
  hp_acc acc = {0, 0};
  if (!request_line(L, &c, &plain) || !fields(L, &c, max, false, NULL, &acc, &k->spans)) {
    lua_pushnil(L);
    return 1;
  }
  keep_string(L, 1, 1);
  k->head = (const char *)c.s;
  k->hpos = p0;
  k->hnext = c.p;
  lua_pushinteger(L, (lua_Integer)c.p + 1);
  lua_pushboolean(L, plain && acc.seen == SEEN_HOST);
  return 8;
}

static int hp_response(lua_State *L) {
  lua_Integer max;
  hp_cur c = check_args(L, &max);
  hp_names only, *onlyp = NULL; /* (read before anything is pushed) */
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    names_read(L, 4, &only);
    onlyp = &only;
  }
  hp_acc acc = {0, 0};
  if (!status_line(L, &c) || !fields(L, &c, max, true, onlyp, &acc, NULL)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)c.p + 1);
  return 6;
}

/* ---------- httpparse.block ---------- */

enum { BLOCK_HOST = 1, BLOCK_UA = 2, BLOCK_CTYPE = 4, BLOCK_DATE = 8 };
#define BLOCK_STACK 2048

/* the lines being built: in `stack`, then in a userdata at stack slot
** `slot` (replaced as it grows), so nothing leaks when an error unwinds */
typedef struct hp_out {
  char *p;
  size_t n, cap;
  int slot;
  char stack[BLOCK_STACK];
} hp_out;

/* (not an initializer: that would zero the stack buffer on every call) */
static void out_init(hp_out *o, int slot) {
  o->p = o->stack;
  o->n = 0;
  o->cap = BLOCK_STACK;
  o->slot = slot;
}

static void out_add(lua_State *L, hp_out *o, const char *s, size_t n) {
  if (o->n + n > o->cap) {
    size_t cap = o->cap * 2 > o->n + n ? o->cap * 2 : o->n + n;
    char *p = lua_newuserdatauv(L, cap, 0);
    memcpy(p, o->p, o->n);
    lua_replace(L, o->slot);
    o->p = p;
    o->cap = cap;
  }
  if (s) memcpy(o->p + o->n, s, n);
  o->n += n;
}

bool lhttp_is_token(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i])) return false;
  return true;
}

/* a value's bytes, or NULL (not a string or number, or CR, LF or NUL) */
static const char *field_value(lua_State *L, int idx, size_t *n) {
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) return NULL;
  const char *v = lua_tolstring(L, idx, n); /* a number: converts the copy */
  for (size_t i = 0; i < *n; i++) {
    char ch = v[i];
    if (ch == '\r' || ch == '\n' || ch == '\0') return NULL;
  }
  return v;
}

static void out_line(lua_State *L, hp_out *o, const char *k, size_t kn, const char *v, size_t vn) {
  out_add(L, o, NULL, kn + vn + 4); /* room, then the bytes in place */
  char *p = o->p + o->n - (kn + vn + 4);
  memcpy(p, k, kn);
  memcpy(p + kn, ": ", 2);
  memcpy(p + kn + 2, v, vn);
  memcpy(p + kn + 2 + vn, "\r\n", 2);
}

/* the lines of the value on the top (key at -2): false if a value is bad */
static bool value_lines(lua_State *L, hp_out *o, const char *k, size_t kn) {
  size_t vn;
  if (!lua_istable(L, -1)) {
    lua_pushvalue(L, -1);
    const char *v = field_value(L, -1, &vn);
    if (v) out_line(L, o, k, kn, v, vn);
    lua_pop(L, 1);
    return v != NULL;
  }
  lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, -1, i);
    const char *v = field_value(L, -1, &vn);
    if (v) out_line(L, o, k, kn, v, vn);
    lua_pop(L, 1);
    if (!v) return false;
  }
  return true;
}

/* l[0 .. n) is the literal lit (a macro: sizeof is the literal's length) */
#define name_is(l, n, lit) ((n) == sizeof(lit) - 1 && memcmp((l), (lit), (n)) == 0)

static int seen_bit(const char *l, size_t n) {
  if (name_is(l, n, "host")) return BLOCK_HOST;
  if (name_is(l, n, "user-agent")) return BLOCK_UA;
  if (name_is(l, n, "content-type")) return BLOCK_CTYPE;
  if (name_is(l, n, "date")) return BLOCK_DATE;
  return 0;
}

/* whether the lower-cased name (on the top) is a key of the table at idx */
static bool in_set(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return false;
  lua_pushvalue(L, -1);
  bool in = lua_rawget(L, idx) != LUA_TNIL;
  lua_pop(L, 1);
  return in;
}

/* pushes the key's lower case (the key itself when it has no upper case) */
static const char *push_lower_key(lua_State *L, const char *k, size_t kn) {
  size_t i = 0;
  while (i < kn && !(k[i] >= 'A' && k[i] <= 'Z')) i++;
  if (i == kn) lua_pushvalue(L, -2);
  else push_lower(L, (const unsigned char *)k, kn);
  return lua_tostring(L, -1);
}

/* one field (key at -2, value at -1): its lines, its bit; -1: bad value */
static int block_field(lua_State *L, hp_out *o, int *conn_idx) {
  size_t kn = lua_rawlen(L, -2);
  const char *k = lua_tostring(L, -2);
  const char *l = push_lower_key(L, k, kn);
  int bit = 0;
  if (!in_set(L, 2)) {
    bit = seen_bit(l, kn);
    if (name_is(l, kn, "connection")) {
      lua_pushvalue(L, -2);
      lua_replace(L, *conn_idx);
    }
    if (!in_set(L, 3)) {
      lua_pop(L, 1);
      return value_lines(L, o, k, kn) ? bit : -1;
    }
  }
  lua_pop(L, 1);
  return bit;
}

static int block_fail(lua_State *L, const char *what) {
  lua_pushnil(L);
  lua_pushstring(L, what);
  lua_pushvalue(L, -4); /* the key */
  return 3;
}

static int hp_block(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TSTRING) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_pushnil(L); /* 4: the output's userdata, once it outgrows the stack */
  lua_pushnil(L); /* 5: the Connection value */
  hp_out o;
  out_init(&o, 4);
  int seen = 0, conn_idx = 5;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING || !lhttp_is_token(lua_tostring(L, -2), lua_rawlen(L, -2)))
      return block_fail(L, "name");
    int bit = block_field(L, &o, &conn_idx);
    if (bit < 0) return block_fail(L, "value");
    seen |= bit;
    lua_pop(L, 1);
  }
  lua_pushlstring(L, o.p, o.n);
  lua_pushinteger(L, seen);
  lua_pushvalue(L, 5);
  return 3;
}

/* ---------- httpparse.relay ---------- */

#define RELAY_MAX_FIELDS LHTTP_RELAY_MAX

/* what relay does with a field by its name, in any case: RELAY_NEVER (a
** hop-by-hop name, RFC 9110 7.6.1, or Content-Length: the next hop's
** framing is the sender's), or the BLOCK_ bit it adds to seen (0: none).
** Switched on the length, a literal's first letter before the rest: at
** most one whole compare for most names */
#define RELAY_NEVER (-1)
#define name_ci(s, n, lit) \
  ((n) == sizeof(lit) - 1 && ascii_lower((s)[0]) == (unsigned char)(lit)[0] && same_ci((s), (lit), (n)))
static int relay_class(const unsigned char *s, size_t n) {
  switch (n) {
  case 2: return name_ci(s, n, "te") ? RELAY_NEVER : 0;
  case 4: return name_ci(s, n, "host") ? BLOCK_HOST : name_ci(s, n, "date") ? BLOCK_DATE : 0;
  case 7: return name_ci(s, n, "trailer") || name_ci(s, n, "upgrade") ? RELAY_NEVER : 0;
  case 10:
    if (name_ci(s, n, "connection") || name_ci(s, n, "keep-alive")) return RELAY_NEVER;
    return name_ci(s, n, "user-agent") ? BLOCK_UA : 0;
  case 12: return name_ci(s, n, "content-type") ? BLOCK_CTYPE : 0;
  case 14: return name_ci(s, n, "content-length") ? RELAY_NEVER : 0;
  case 16: return name_ci(s, n, "proxy-connection") ? RELAY_NEVER : 0;
  case 17: return name_ci(s, n, "transfer-encoding") ? RELAY_NEVER : 0;
  case 18: return name_ci(s, n, "proxy-authenticate") ? RELAY_NEVER : 0;
  case 19: return name_ci(s, n, "proxy-authorization") ? RELAY_NEVER : 0;
  default: return 0;
  }
}

/* whether the comma-separated list v[0 .. vn) names the lower-case name l */
static bool lists_name(const unsigned char *v, size_t vn, const char *l, size_t n) {
  size_t i = 0;
  while (i < vn) {
    while (i < vn && (v[i] == ',' || is_ws(v[i]))) i++;
    size_t t0 = i;
    while (i < vn && v[i] != ',' && !is_ws(v[i])) i++;
    if (i - t0 == n && same_ci(v + t0, l, n)) return true;
  }
  return false;
}

/* the field lines and the empty line after them into f[]: their count, or
** -1 (not a field line, or too many); the cursor ends after the head */
static int relay_scan(hp_cur *c, hp_field *f) {
  int nf = 0;
  while (!eat_eol(c)) {
    if (c->p >= c->n) return nf; /* the end of s ends the head */
    if (nf == RELAY_MAX_FIELDS) return -1;
    if (!field_span(c, &f[nf++])) return -1;
  }
  return nf;
}

/* skips leading empty lines and a start line (a first line that is not a
** field line): false if that line has no end (nothing at all: true) */
static bool skip_start(hp_cur *c) {
  while (c->p < c->n && (c->s[c->p] == '\r' || c->s[c->p] == '\n')) c->p++;
  size_t p0 = c->p;
  if (p0 == c->n) return true; /* nothing: no fields */
  if (span_token(c) > 0 && at(c, ':')) {
    c->p = p0;
    return true;
  }
  const unsigned char *lf = memchr(c->s + c->p, '\n', c->n - c->p);
  if (!lf) return false;
  c->p = (size_t)(lf - c->s) + 1;
  return true;
}

/* whether a Connection field of f[0 .. nf) lists the name l */
static bool connection_lists(const hp_cur *c, const hp_field *f, int nf, const char *l, size_t n) {
  for (int i = 0; i < nf; i++)
    if (f[i].nlen == 10 && same_ci(c->s + f[i].n0, "connection", 10) &&
        lists_name(c->s + f[i].v0, f[i].vlen, l, n))
      return true;
  return false;
}

/* one field: its line into o unless it is not relayed; its seen bit (the
** name compared in place, in any case: nothing lowered, nothing pushed) */
static int relay_field(lua_State *L, hp_out *o, const hp_names *d, const hp_cur *c,
                       const hp_field *f, int nf, int i, bool has_conn) {
  const hp_field *x = &f[i];
  const unsigned char *nm = c->s + x->n0;
  int class = relay_class(nm, x->nlen);
  if (class == RELAY_NEVER || names_has_ci(L, d, nm, x->nlen)) return 0;
  if (has_conn) {
    char buf[NAME_STACK];
    const char *l = buf; /* the name in lower case: here, or a Lua string */
    bool pushed = x->nlen > NAME_STACK;
    if (pushed) {
      push_lower(L, nm, x->nlen);
      l = lua_tostring(L, -1);
    } else {
      lower_into(buf, nm, x->nlen);
    }
    bool listed = connection_lists(c, f, nf, l, x->nlen);
    if (pushed) lua_pop(L, 1);
    if (listed) return 0;
  }
  out_line(L, o, (const char *)nm, x->nlen, (const char *)c->s + x->v0, x->vlen);
  return class;
}

/* whether the Connection value v names a field other than Keep-Alive
** (never relayed anyway): "Connection: keep-alive" asks no field check */
static bool names_fields(const unsigned char *v, size_t vn) {
  size_t i = 0;
  while (i < vn) {
    while (i < vn && (v[i] == ',' || is_ws(v[i]))) i++;
    size_t t0 = i;
    while (i < vn && v[i] != ',' && !is_ws(v[i])) i++;
    if (i > t0 && !(i - t0 == 10 && same_ci(v + t0, "keep-alive", 10))) return true;
  }
  return false;
}

/* whether a Connection field of f[0 .. nf) lists a field to drop */
static bool any_connection(const hp_cur *c, const hp_field *f, int nf) {
  for (int i = 0; i < nf; i++)
    if (f[i].nlen == 10 && same_ci(c->s + f[i].n0, "connection", 10) &&
        names_fields(c->s + f[i].v0, f[i].vlen))
      return true;
  return false;
}

/* the tail: the strings at stack slots [from, to], appended as they are */
static void out_tail(lua_State *L, hp_out *o, int from, int to) {
  for (int i = from; i <= to; i++) {
    size_t n;
    const char *t = lua_tolstring(L, i, &n);
    out_add(L, o, t, n);
  }
}

/* appends the relayed lines of the field lines f[0 .. nf) of c's bytes
** (drop set at drop_idx) to o; their seen bits */
static int relay_into(lua_State *L, hp_out *o, const hp_cur *c, const hp_field *f, int nf,
                      int drop_idx) {
  bool has_conn = any_connection(c, f, nf);
  hp_names d;
  names_read(L, drop_idx, &d);
  int seen = 0;
  for (int i = 0; i < nf; i++) seen |= relay_field(L, o, &d, c, f, nf, i, has_conn);
  return seen;
}

/* pushes the relayed lines of the field lines f[0 .. nf) of c's bytes
** (drop set at drop_idx, then the tail strings at [from, to]) and their
** seen bits; returns the length of the lines before the tail */
static size_t relay_lines(lua_State *L, const hp_cur *c, const hp_field *f, int nf, int drop_idx,
                          int from, int to) {
  lua_pushnil(L); /* the output's userdata, once it outgrows the stack */
  hp_out o;
  out_init(&o, lua_gettop(L));
  int seen = relay_into(L, &o, c, f, nf, drop_idx);
  size_t own = o.n;
  out_tail(L, &o, from, to);
  lua_pushlstring(L, o.p, o.n);
  lua_replace(L, o.slot);
  lua_pushinteger(L, seen);
  return own;
}

/* the tail strings from slot 4 on (strings only); the top */
static int relay_tail_check(lua_State *L) {
  int top = lua_gettop(L);
  for (int i = 4; i <= top; i++) luaL_checktype(L, i, LUA_TSTRING);
  if (top < 3) lua_settop(L, 3);
  return top < 3 ? 3 : top;
}

/* relay's lines at stack index idx (its own lines first, own bytes, their
** seen bits at idx + 1) are the keep's, for httpparse.lines */
static void keep_lines(lua_State *L, hp_keep *k, int idx, size_t own) {
  keep_string(L, idx, 2);
  k->lines = lua_tostring(L, idx);
  k->lown = own;
  k->lseen = (int)lua_tointeger(L, idx + 1);
}

static int hp_relay(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_Integer pos = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, pos >= 1, 2, "position must be >= 1");
  if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TSTRING) luaL_checktype(L, 3, LUA_TTABLE);
  int top = relay_tail_check(L);
  hp_cur c = {(const unsigned char *)s, (size_t)pos - 1, n};
  if (c.p > n) c.p = n;
  hp_field scanned[RELAY_MAX_FIELDS];
  const hp_field *f = scanned;
  hp_keep *k = keep_of(L);
  int nf;
  if (k->head == s && k->hpos == c.p) { /* the head httpparse.request parsed last */
    f = k->spans.f;
    nf = k->spans.n;
    c.p = k->hnext;
  } else {
    nf = skip_start(&c) ? relay_scan(&c, scanned) : -1;
  }
  if (nf < 0) {
    lua_pushnil(L);
    return 1;
  }
  size_t own = relay_lines(L, &c, f, nf, 3, 4, top);
  keep_lines(L, k, top + 1, own);
  lua_pushinteger(L, (lua_Integer)c.p + 1);
  return 3;
}

/* ---------- httpparse.lines ---------- */

/* one line of s as relay writes it: name ": " value CRLF, the value
** without OWS around it; the cursor after it; its name's length (0: not).
** A field line whose value starts two bytes after the name, the first
** of them SP, and ends just before a CR (never a value byte: so the EOL
** is CRLF and no OWS is left between) */
static size_t relayed_line(hp_cur *c) {
  hp_field x;
  size_t e = field_line(c->s, c->p, c->n, &x);
  if (!e || x.v0 != x.n0 + x.nlen + 2 || c->s[x.n0 + x.nlen + 1] != ' ' ||
      x.v0 + x.vlen != e - 2 || c->s[e - 2] != '\r')
    return 0;
  c->p = e;
  return x.nlen;
}

/* httpparse.lines(s) -> seen | nil: whether s is field lines exactly as
** relay writes them (each checked as the parsers do, CRLF ends, ": "
** after the name, no OWS around the value) and none a proxy never relays:
** relay(s) would give s back unchanged, with these seen bits; nil: it
** would not (ask relay) */
static int hp_lines(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  hp_cur c = {(const unsigned char *)s, 0, n};
  int seen = 0;
  hp_keep *k = keep_of(L);
  if (k->lines == s) { /* relay's last lines: its own part is relay's (checked) */
    c.p = k->lown;
    seen = k->lseen;
  }
  while (c.p < c.n) {
    size_t p0 = c.p, nlen = relayed_line(&c);
    int class = nlen ? relay_class(c.s + p0, nlen) : RELAY_NEVER;
    if (class == RELAY_NEVER) {
      lua_pushnil(L);
      return 1;
    }
    seen |= class;
  }
  lua_pushinteger(L, seen);
  return 1;
}

/* ---------- for lhttpread.c ---------- */

int lhttp_push_upvalues(lua_State *L) {
  luaL_checkstack(L, N_UP, "httpparse");
  for (int i = 0; i < N_NAMES; i++) lua_pushlstring(L, COMMON_NAME[i].s, COMMON_NAME[i].n);
  for (int i = 0; i < N_METHODS; i++) lua_pushlstring(L, COMMON_METHOD[i].s, COMMON_METHOD[i].n);
  for (char d = '0'; d <= '9'; d++) lua_pushlstring(L, &d, 1);
  return N_UP;
}

int lhttp_response_head(lua_State *L, const char *b, size_t n, lua_Integer max, int only_idx,
                        lhttp_fields *keep) {
  hp_cur cur = {(const unsigned char *)b, 0, n};
  hp_names only, *onlyp = NULL;
  if (only_idx) {
    names_read(L, only_idx, &only);
    onlyp = &only;
  }
  hp_acc acc = {0, 0};
  if (!status_line(L, &cur)) return LHTTP_BAD_STATUS;
  if (!fields(L, &cur, max, true, onlyp, &acc, keep) || cur.p != n) return LHTTP_BAD_FIELDS;
  return 0;
}

void lhttp_relay_fields(lua_State *L, const char *b, const lhttp_fields *keep, int drop_idx) {
  if (keep->n < 0) {
    lua_pushnil(L);
    lua_pushinteger(L, 0);
    return;
  }
  hp_cur c = {(const unsigned char *)b, 0, 0}; /* (the spans are in b) */
  relay_lines(L, &c, keep->f, keep->n, drop_idx, 1, 0);
}

int lhttp_response_spans(const char *b, size_t n, lua_Integer max, lhttp_status *st,
                         lhttp_fields *keep) {
  hp_cur cur = {(const unsigned char *)b, 0, n};
  size_t r0, r1;
  if (!status_scan(&cur, st, &r0, &r1)) return LHTTP_BAD_STATUS;
  lua_Integer left = max;
  keep->n = scan_fields(&cur, keep->f, LHTTP_RELAY_MAX, &left);
  if (!eat_eol(&cur) || cur.p != n) return LHTTP_BAD_FIELDS; /* (or more than kept) */
  return 0;
}

void lhttp_relay_answer(lua_State *L, const char *b, const lhttp_fields *keep, int drop_idx,
                        const char *body, size_t bodyn) {
  hp_cur c = {(const unsigned char *)b, 0, 0}; /* (the spans are in b) */
  lua_pushnil(L); /* the output's userdata, once it outgrows the stack */
  hp_out o;
  out_init(&o, lua_gettop(L));
  relay_into(L, &o, &c, keep->f, keep->n, drop_idx);
  char cl[48] = "Content-Length: "; /* the digits written backwards from the end */
  char *e = cl + sizeof cl, *d = e - 4;
  memcpy(d, "\r\n\r\n", 4);
  size_t v = bodyn;
  do *--d = (char)('0' + v % 10); while ((v /= 10) != 0);
  out_add(L, &o, cl, 16);
  out_add(L, &o, d, (size_t)(e - d));
  out_add(L, &o, body, bodyn);
  lua_pushlstring(L, o.p, o.n);
  lua_replace(L, o.slot);
}

bool lhttp_has_token(const char *v, size_t vn, const char *tok) {
  return lists_name((const unsigned char *)v, vn, tok, strlen(tok));
}

bool lhttp_same_ci(const char *a, const char *l, size_t n) {
  return same_ci((const unsigned char *)a, l, n);
}

static bool name_at(int up, const char *l) { return strcmp(COMMON_NAME[up - 1].s, l) == 0; }

/* the NAME_ constants index COMMON_NAME: a list edited out of step fails here */
static bool names_in_step(void) {
  return name_at(NAME_HOST, "host") && name_at(NAME_CONNECTION, "connection") &&
         name_at(NAME_CONTENT_LENGTH, "content-length") &&
         name_at(NAME_TRANSFER_ENCODING, "transfer-encoding") && name_at(NAME_EXPECT, "expect");
}

int luaopen_httpparse(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"request", hp_request},
      {"response", hp_response},
      {"block", hp_block},
      {"relay", hp_relay},
      {"lines", hp_lines},
      {NULL, NULL},
  };
  if (!names_in_step()) return luaL_error(L, "httpparse: NAME_ constants out of step");
  luaL_newlibtable(L, fns);
  int nup = lhttp_push_upvalues(L);
  hp_keep *k = lua_newuserdatauv(L, sizeof *k, 2); /* UP_KEEP */
  k->head = k->lines = NULL;
  luaL_setfuncs(L, fns, nup + 1); /* every function's upvalues */
  return 1;
}
