/*
** lhttpread.h — `goluarun.httpread`: the HTTP client's answer head read
** from a conn in one operation (floor 3, over conn.h and lhttp.h).
**
**   httpread.readresponse(conn, max_header_bytes, max_headers, only, head,
**                         whole_max [, relay [, mt [, answer]]])
**     -> status, reason, minor, headers, rawhead, mode, left, close, body
**        [, lines, seen]
**      | status, nil x6, close, nil x3, answer   (answer asked, and given)
**      | nil, err, got
**   httpread.checkreq(req) -> method, follow, limits
**
** Reads until the answer's head is complete in the conn's own read buffer
** (conn_fill: no Lua string per read), skips 1xx answers (101 excepted),
** parses it (lhttp_response_head; `only`: a set table or a string of
** comma-separated lower-case names, as httpparse.response's), and decides
** the framing: mode "none" (a HEAD request: `head` true, 204, 304, 1xx,
** Content-Length 0), "length" (left: the Content-Length), "chunked",
** "close"; or nil when a Connection, Transfer-Encoding or Content-Length
** field is repeated (the caller decides). close: the conn cannot be kept
** (HTTP/1.0 without keep-alive, Connection: close, a close-delimited body).
** rawhead: the head's bytes; the head leaves the buffer, and so does a
** Content-Length body of at most whole_max bytes that is already buffered
** (then body is it, else nil: the body's bytes stay for conn:read).
** relay (a drop set, as httpparse.relay's): the head's field lines as a
** proxy sends them on are made from the buffered head (httpparse.relay's
** lines and seen bits; nil, 0 if it declines the head) and returned too:
** from the spans the parse kept (lhttp_relay_fields), no second scan.
** mt (a table): the headers table's metatable, set in C (the client's
** Headers: no setmetatable call per answer).
** answer (true, with relay: http.proxy's, when its server's answer takes
** the common path): a 200..599 answer other than 204/304 to a request
** other than HEAD whose Content-Length body (at most whole_max bytes) is
** here whole, and no framing field repeated or transfer coding, gives the
** 12th result instead of the others: one string, the relayed lines,
** "Content-Length: N", the empty line and the body (what the server
** writes after its status line and Date), made from the spans of a parse
** that builds no headers table (lhttp_response_spans); any other answer
** gives the results above.
** Failures: the conn's ("timeout", "closed", "eof" when no byte of the
** answer came, ...), "bad response: malformed status line" / "malformed
** header" / "truncated head" / "bad Content-Length" / "HTTP/M.m",
** "headers too large"; got: some byte of the answer had arrived (a reused
** conn that failed before any cannot have been read by its server).
** Runs as a conn read operation (conn_op_run): the read lock, deadlines,
** the parking; owner M only, like every conn method.
**
** checkreq is http.request's per-call check of its request table in one C
** call (url a string, method a token or nil -> "GET", body, timeout,
** follow -> an integer, fields, headers, relay; limits: a max_* field is
** given); a bad field raises "http.request: req.X must be ..." where
** http.request was called. Fields are read with lua_gettable, the keys
** kept in checkreq's upvalues (no C string interned per read; a table
** with an __index, http.get's, is read as Lua would).
*/
#ifndef GLR_LHTTPREAD_H
#define GLR_LHTTPREAD_H

#include <lua.h>

#include "../runtime/common.h"

/* luaopen_httpread — the httpread table (main.c registers it in
** package.preload as "goluarun.httpread") */
GLR_INTERNAL int luaopen_httpread(lua_State *L);

#endif
