/*
** netaddr.h — parsing and formatting of net addresses (docs/API.md): "host:port",
** ":port", "[v6]:port", "unix:/path". Host names other than "localhost" are
** not resolved here (that needs net.lookup, which never blocks a P).
** Pure functions, any thread; netaddr_check raises Lua errors in L.
*/
#ifndef GLR_NETADDR_H
#define GLR_NETADDR_H

#include <sys/socket.h>

#include <lua.h>

#include "../runtime/common.h"

typedef struct netaddr {
  struct sockaddr_storage ss;
  socklen_t len;
  int family;
} netaddr;

enum { ADDR_OK = 0, ADDR_BAD = 1, ADDR_NOHOST = 2 };

/* netaddr_parse — passive: an empty host means all interfaces (listen),
** else loopback (dial). On failure *err says why. */
GLR_INTERNAL int netaddr_parse(const char *s, bool passive, netaddr *a, const char **err);
/* netaddr_format — "ip:port", "[ip6]:port" or "unix:/path" into buf. */
GLR_INTERNAL const char *netaddr_format(const struct sockaddr *sa, socklen_t len,
                                        char *buf, size_t n);

/* netaddr_check — netaddr_parse of the string at idx; raises on a malformed
** address; returns the string, *status ADDR_OK or ADDR_NOHOST. */
GLR_INTERNAL const char *netaddr_check(lua_State *L, int idx, bool passive, netaddr *a,
                                       int *status);
/* netaddr_socket — a non-blocking, close-on-exec socket, or -1 (errno). */
GLR_INTERNAL int netaddr_socket(int family, int type);

#endif
