#ifndef PLEXUS_CSODIUM_SHIM_H
#define PLEXUS_CSODIUM_SHIM_H
#include <sodium.h>

// crypto_generichash_blake2b_state is declared 64-byte aligned, which Swift does not import.
// These wrappers take the state as an opaque pointer to storage the caller allocates with
// crypto_generichash_blake2b_statebytes() bytes and 64-byte alignment.
static inline int CSodium_blake2b_init(void *state, size_t outlen) {
    return crypto_generichash_blake2b_init((crypto_generichash_blake2b_state *)state, NULL, 0, outlen);
}
static inline int CSodium_blake2b_init_keyed(void *state, const void *key, size_t keylen, size_t outlen) {
    return crypto_generichash_blake2b_init((crypto_generichash_blake2b_state *)state, (const unsigned char *)key, keylen, outlen);
}
static inline int CSodium_blake2b_update(void *state, const void *in, unsigned long long inlen) {
    return crypto_generichash_blake2b_update((crypto_generichash_blake2b_state *)state,
                                             (const unsigned char *)in, inlen);
}
static inline int CSodium_blake2b_final(void *state, void *out, size_t outlen) {
    return crypto_generichash_blake2b_final((crypto_generichash_blake2b_state *)state, (unsigned char *)out, outlen);
}
#endif
