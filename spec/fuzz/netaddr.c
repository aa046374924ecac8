/* netaddr.c — libFuzzer target: address strings ("host:port", ":port",
** "[v6]:port", "unix:/path") as a script or a peer's config may give them.
**
** netaddr_parse must accept or refuse with a reason, reading nothing past
** the string's NUL; an accepted address, formatted by netaddr_format and
** parsed again, must be the same socket address; netaddr_format must
** respect any buffer size. Any other outcome aborts. Single-threaded.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "netaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *s) {
  fprintf(stderr, "netaddr: %s: \"%s\"\n", what, s);
  abort();
}

static void check(const char *s, bool passive, size_t fmtsize) {
  netaddr a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  const char *err = NULL;
  int st = netaddr_parse(s, passive, &a, &err);
  if (st != ADDR_OK) {
    if ((st != ADDR_BAD && st != ADDR_NOHOST) || !err || !*err) fail("refused without a reason", s);
    return;
  }
  if (a.len == 0 || a.len > sizeof a.ss) fail("bad length", s);
  char text[sizeof(struct sockaddr_un) + 16];
  netaddr_format((const struct sockaddr *)&a.ss, a.len, text, sizeof text);
  if (netaddr_parse(text, false, &b, &err) != ADDR_OK) fail("its formatting does not parse", text);
  if (a.family != b.family || a.len != b.len || memcmp(&a.ss, &b.ss, a.len) != 0)
    fail("formatting and parsing again changed it", s);
  /* a buffer of exactly fmtsize bytes: ASan sees a write past it */
  char *small = malloc(fmtsize);
  if (!small) abort();
  netaddr_format((const struct sockaddr *)&a.ss, a.len, small, fmtsize);
  if (!memchr(small, 0, fmtsize)) fail("formatting left no NUL", s);
  free(small);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t fmtsize = 1 + data[0] % 64;
  /* the string: the rest, cut at its first NUL, in a block of its exact
  ** size so any read past the terminator is out of bounds */
  const char *rest = (const char *)data + 1;
  size_t n = strnlen(rest, size - 1);
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, rest, n);
  s[n] = 0;
  check(s, false, fmtsize);
  check(s, true, fmtsize);
  free(s);
  return 0;
}
