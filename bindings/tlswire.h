/*
** tlswire.h — the TLS handshake's name matching, kept apart from OpenSSL so
** the fuzz target spec/fuzz/tls_names.c can drive it: the ALPN choice (the
** client's protocol list is peer bytes) and the SNI pattern match (the
** name is the peer's). Floor 1, pure functions, any thread.
**
** Invariants: an ALPN list is wire format, a sequence of (length byte,
** name); the server's own list (built by tls.c's parse_alpn) is well
** formed with no empty name; the client's may be anything, and no byte
** outside it is read: an element whose length runs past the end ends the
** list.
*/
#ifndef GLR_TLSWIRE_H
#define GLR_TLSWIRE_H

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* tlswire_alpn_pick — the first protocol of the server's list srv that the
** client's list in also offers: true and *out, *outlen (pointing into in),
** or false. */
static inline bool tlswire_alpn_pick(const unsigned char *srv, unsigned srvlen,
                                     const unsigned char *in, unsigned inlen,
                                     const unsigned char **out, unsigned char *outlen) {
  for (unsigned i = 0; i < srvlen; i += 1u + srv[i]) {
    for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
      if (in[j] == srv[i] && j + 1u + in[j] <= inlen &&
          memcmp(in + j + 1, srv + i + 1, in[j]) == 0) {
        *out = in + j + 1;
        *outlen = in[j];
        return true;
      }
    }
  }
  return false;
}

/* tlswire_sni_match — name (any case) equals pat, or pat is "*.x" and name
** is one label followed by ".x" */
static inline bool tlswire_sni_match(const char *pat, const char *name) {
  if (strcasecmp(pat, name) == 0) return true;
  if (pat[0] != '*' || pat[1] != '.') return false;
  const char *dot = strchr(name, '.');
  return dot && strcasecmp(dot, pat + 1) == 0;
}

#endif
