/*
 * cl-cryptobench: prints the bulk-encryption speed of the wolfSSL this project linked, so a
 * user can see whether they got the AES-NI build (.ci/install) or a generic one.
 *   cl-cryptobench [seconds-per-cipher]   (default 1)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/version.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>

#include "cl/time.h"

#define BLOCK (16 * 1024)

static uint8_t in[BLOCK], out[BLOCK];

static double bench_aesgcm(double secs, int keylen)
{
    Aes aes;
    uint8_t key[32] = {1}, iv[12] = {2}, tag[16];
    uint64_t t0, bytes = 0;

    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0 || wc_AesGcmSetKey(&aes, key, (word32)keylen))
        return -1;
    t0 = cl_now_us();
    while ((double)(cl_now_us() - t0) < secs * 1e6) {
        for (int i = 0; i < 64; i++) {
            if (wc_AesGcmEncrypt(&aes, out, in, BLOCK, iv, sizeof(iv), tag, sizeof(tag), NULL, 0))
                return -1;
            bytes += BLOCK;
        }
    }
    wc_AesFree(&aes);
    return (double)bytes / ((double)(cl_now_us() - t0) / 1e6) / (1024.0 * 1024.0);
}

static double bench_chacha(double secs)
{
    uint8_t key[32] = {1}, iv[12] = {2}, tag[16];
    uint64_t t0, bytes = 0;

    t0 = cl_now_us();
    while ((double)(cl_now_us() - t0) < secs * 1e6) {
        for (int i = 0; i < 64; i++) {
            if (wc_ChaCha20Poly1305_Encrypt(key, iv, NULL, 0, in, BLOCK, out, tag))
                return -1;
            bytes += BLOCK;
        }
    }
    return (double)bytes / ((double)(cl_now_us() - t0) / 1e6) / (1024.0 * 1024.0);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 1.0;
    const char *aesni =
#ifdef WOLFSSL_AESNI
        "yes";
#else
        "no";
#endif

    if (secs <= 0 || secs > 60) {
        fprintf(stderr, "usage: cl-cryptobench [seconds 0..60]\n");
        return 2;
    }
    memset(in, 0xa5, sizeof(in));
    printf("wolfSSL %s, AES-NI %s\n", LIBWOLFSSL_VERSION_STRING, aesni);
    printf("AES-128-GCM        %9.1f MiB/s\n", bench_aesgcm(secs, 16));
    printf("AES-256-GCM        %9.1f MiB/s\n", bench_aesgcm(secs, 32));
    printf("ChaCha20-Poly1305  %9.1f MiB/s\n", bench_chacha(secs));
    return 0;
}
