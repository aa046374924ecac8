/* tls_names.c — libFuzzer target: the handshake's name matching
** (bindings/tlswire.h), whose inputs come from the TLS peer.
**
** Input: a byte k, then k bytes making the server's ALPN list (rebuilt
** well formed, as tls.c's parse_alpn builds it), then the client's list,
** raw; the same tail also gives an SNI pattern and a name (split at the
** first NUL). tlswire_alpn_pick must read only inside both lists and agree
** with a plain reference (the first server protocol, in server order, that
** is a whole element of the client's list); tlswire_sni_match must accept
** any name equal to the pattern (any case) and accept otherwise only a
** "*.x" pattern with a one-label name. Any other outcome aborts.
** Single-threaded.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what) {
  fprintf(stderr, "tls_names: %s\n", what);
  abort();
}

/* reference: the first complete client element equal to a server one */
static bool ref_pick(const unsigned char *srv, unsigned srvlen, const unsigned char *in,
                     unsigned inlen, const unsigned char **out, unsigned char *outlen) {
  for (unsigned i = 0; i < srvlen; i += 1u + srv[i]) {
    unsigned j = 0;
    while (j < inlen && j + 1u + in[j] <= inlen) {
      if (in[j] == srv[i] && memcmp(in + j + 1, srv + i + 1, srv[i]) == 0) {
        *out = in + j + 1;
        *outlen = in[j];
        return true;
      }
      j += 1u + in[j];
    }
  }
  return false;
}

static void check_alpn(const uint8_t *data, size_t size) {
  size_t k = data[0] < size - 1 ? data[0] : size - 1;
  /* the server's list: the k bytes' elements, the broken ones dropped */
  unsigned char *srv = malloc(k ? k : 1);
  unsigned srvlen = 0;
  if (!srv) abort();
  for (size_t i = 1; i < 1 + k;) {
    size_t n = data[i];
    if (n > 0 && i + 1 + n <= 1 + k) {
      memcpy(srv + srvlen, data + i, 1 + n);
      srvlen += (unsigned)(1 + n);
    }
    i += 1 + n;
  }
  unsigned inlen = (unsigned)(size - 1 - k);
  unsigned char *in = malloc(inlen ? inlen : 1);
  if (!in) abort();
  memcpy(in, data + 1 + k, inlen);
  const unsigned char *out = NULL, *rout = NULL;
  unsigned char outlen = 0, routlen = 0;
  bool got = tlswire_alpn_pick(srv, srvlen, in, inlen, &out, &outlen);
  bool want = ref_pick(srv, srvlen, in, inlen, &rout, &routlen);
  if (got != want || (got && (out != rout || outlen != routlen)))
    fail("alpn pick disagrees with the reference");
  if (got && (out < in || out + outlen > in + inlen)) fail("alpn pick points outside the list");
  free(in);
  free(srv);
}

static void check_sni(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  size_t n1 = strnlen(p, size);
  size_t n2 = n1 < size ? strnlen(p + n1 + 1, size - n1 - 1) : 0;
  char *pat = malloc(n1 + 1), *name = malloc(n2 + 1);
  if (!pat || !name) abort();
  memcpy(pat, p, n1);
  pat[n1] = 0;
  if (n1 < size) memcpy(name, p + n1 + 1, n2);
  name[n2] = 0;
  bool m = tlswire_sni_match(pat, name);
  if (strcasecmp(pat, name) == 0 && !m) fail("sni: an equal name does not match");
  if (m && strcasecmp(pat, name) != 0) {
    const char *dot = strchr(name, '.');
    if (pat[0] != '*' || pat[1] != '.' || !dot || strcasecmp(dot + 1, pat + 2) != 0)
      fail("sni: a match that is neither equal nor one wildcard label");
  }
  free(name);
  free(pat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  check_alpn(data, size);
  check_sni(data + 1, size - 1);
  return 0;
}
