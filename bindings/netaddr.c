/* netaddr.c — see netaddr.h. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <lauxlib.h>

#include "errstr.h"

static int parse_port(const char *s, int *port) {
  if (!*s || strlen(s) > 5) return -1;
  int v = 0;
  for (const char *c = s; *c; c++) {
    if (*c < '0' || *c > '9') return -1;
    v = v * 10 + (*c - '0');
  }
  if (v > 65535) return -1;
  *port = v;
  return 0;
}

static int parse_unix(const char *path, netaddr *a, const char **err) {
  struct sockaddr_un *su = (struct sockaddr_un *)&a->ss;
  size_t n = strlen(path);
  if (n == 0) return *err = "empty unix socket path", ADDR_BAD;
  if (n >= sizeof su->sun_path) return *err = "unix socket path too long", ADDR_BAD;
  memset(su, 0, sizeof *su);
  su->sun_family = AF_UNIX;
  memcpy(su->sun_path, path, n);
  a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  a->family = AF_UNIX;
  return ADDR_OK;
}

static int set_inet(netaddr *a, int family, const char *host, int port) {
  memset(&a->ss, 0, sizeof a->ss);
  a->family = family;
  if (family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) return -1;
    a->len = sizeof *s4;
  } else {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) return -1;
    a->len = sizeof *s6;
  }
  return 0;
}

int netaddr_parse(const char *s, bool passive, netaddr *a, const char **err) {
  if (strncmp(s, "unix:", 5) == 0) return parse_unix(s + 5, a, err);
  char host[256];
  const char *portstr;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return *err = "bad address (want \"[ip6]:port\")", ADDR_BAD;
    size_t hl = (size_t)(end - s - 1);
    if (hl >= sizeof host) return *err = "address too long", ADDR_BAD;
    memcpy(host, s + 1, hl);
    host[hl] = 0;
    portstr = end + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (!colon) return *err = "bad address (want \"host:port\")", ADDR_BAD;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) return *err = "address too long", ADDR_BAD;
    memcpy(host, s, hl);
    host[hl] = 0;
    if (strchr(host, ':')) return *err = "bad address (IPv6 needs \"[ip6]:port\")", ADDR_BAD;
    portstr = colon + 1;
  }
  int port;
  if (parse_port(portstr, &port) < 0) return *err = "bad port", ADDR_BAD;
  if (host[0] == 0) return set_inet(a, AF_INET, passive ? "0.0.0.0" : "127.0.0.1", port), ADDR_OK;
  if (strcmp(host, "localhost") == 0) return set_inet(a, AF_INET, "127.0.0.1", port), ADDR_OK;
  if (set_inet(a, AF_INET, host, port) == 0) return ADDR_OK;
  if (strchr(host, ':') && set_inet(a, AF_INET6, host, port) == 0) return ADDR_OK;
  *err = ERRSTR_NOHOST;
  return ADDR_NOHOST;
}

const char *netaddr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t n) {
  char ip[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    snprintf(buf, n, "%s:%u", ip, ntohs(s4->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    snprintf(buf, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t pl = len > off ? len - off : 0;
    if (pl > 0 && su->sun_path[0] == 0) pl = 0; /* abstract/unnamed */
    snprintf(buf, n, "unix:%.*s", (int)strnlen(su->sun_path, pl), su->sun_path);
  } else {
    snprintf(buf, n, "?");
  }
  return buf;
}

const char *netaddr_check(lua_State *L, int idx, bool passive, netaddr *a, int *status) {
  const char *s = luaL_checkstring(L, idx);
  const char *err = NULL;
  *status = netaddr_parse(s, passive, a, &err);
  if (*status == ADDR_BAD) luaL_error(L, "bad address \"%s\": %s", s, err);
  return s;
}

int netaddr_socket(int family, int type) {
  return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}
