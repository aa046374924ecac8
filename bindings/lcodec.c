/*
** lcodec.c — goluarun.codec: what protocol libraries need and pure Lua does
** slowly. mask() is the hot one: a WebSocket payload is XORed with a
** 4-byte key, and 16 MiB took over a second in Lua (string.unpack/pack
** of 8-byte words) against a few milliseconds here.
**
**   codec.sha1(s)         -> 20-byte digest
**   codec.base64(s)       -> standard base64 with padding
**   codec.random(n)       -> n bytes from OpenSSL's CSPRNG (1 <= n <= 256)
**   codec.mask(s, key)    -> s XORed with the 4-byte key repeated
*/
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lcodec.h"

#define RANDOM_MAX 256

static int codec_sha1(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(s, n, md, &mdlen, EVP_sha1(), NULL))
    return luaL_error(L, "codec.sha1: digest failed");
  lua_pushlstring(L, (const char *)md, mdlen);
  return 1;
}

static int codec_base64(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_argcheck(L, n <= (size_t)INT32_MAX / 2, 1, "string too long");
  size_t out = 4 * ((n + 2) / 3);
  luaL_Buffer b;
  unsigned char *d = (unsigned char *)luaL_buffinitsize(L, &b, out + 1);
  int w = EVP_EncodeBlock(d, (const unsigned char *)s, (int)n);
  luaL_pushresultsize(&b, (size_t)w);
  return 1;
}

static int codec_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= RANDOM_MAX, 1, "size out of range (1..256)");
  unsigned char r[RANDOM_MAX];
  if (RAND_bytes(r, (int)n) != 1) return luaL_error(L, "codec.random: no entropy");
  lua_pushlstring(L, (const char *)r, (size_t)n);
  return 1;
}

/* xor_mask — d = s XOR key repeated; eight bytes at a time (the key
** repeats every 4, so an 8-byte word holds it twice) */
static void xor_mask(unsigned char *d, const unsigned char *s, size_t n,
                     const unsigned char key[4]) {
  uint64_t k8;
  unsigned char kk[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  memcpy(&k8, kk, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    w ^= k8;
    memcpy(d + i, &w, 8);
  }
  for (; i < n; i++) d[i] = s[i] ^ key[i & 3];
}

static int codec_mask(lua_State *L) {
  size_t n, kl;
  const char *s = luaL_checklstring(L, 1, &n);
  const char *key = luaL_checklstring(L, 2, &kl);
  luaL_argcheck(L, kl == 4, 2, "mask key must be 4 bytes");
  if (n == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  luaL_Buffer b;
  unsigned char *d = (unsigned char *)luaL_buffinitsize(L, &b, n);
  xor_mask(d, (const unsigned char *)s, n, (const unsigned char *)key);
  luaL_pushresultsize(&b, n);
  return 1;
}

static const luaL_Reg codec_funcs[] = {
    {"sha1", codec_sha1}, {"base64", codec_base64}, {"random", codec_random},
    {"mask", codec_mask}, {NULL, NULL}};

int luaopen_codec(lua_State *L) {
  luaL_newlib(L, codec_funcs);
  return 1;
}
