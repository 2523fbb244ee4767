/*
 * ids.c — creating and checking document ids (see ids.h).
 * Thread: any.
 */
#include "base/ids.h"

#include "base/clock.h"
#include "base/invariant.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>

#define ID_RAW_BYTES 17        /* table + 14 bytes + 2 checksum: 136 bits = 27.2 base32 chars */
#define ID_RANDOM_RAW_BYTES 20 /* table + 17 random + 2 checksum: 160 bits = 32 chars */
#define ID_RANDOM_BYTES 17

static const char base32_alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

static uint16_t fletcher16(const uint8_t *data, int n)
{
    uint16_t a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        a = (uint16_t)((a + data[i]) % 255);
        b = (uint16_t)((b + a) % 255);
    }
    return (uint16_t)(b << 8 | a);
}

int id_random_bytes(void *out, int n)
{
    return RAND_bytes(out, n) == 1 ? 0 : -1;
}

int id_random_hex(char *out, int n_bytes)
{
    uint8_t raw[64];
    ASSERT(n_bytes > 0 && n_bytes <= (int)sizeof raw);
    if (id_random_bytes(raw, n_bytes) != 0) return -1;
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < n_bytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n_bytes] = '\0';
    return 0;
}

/* n_raw bytes -> n_chars base32 characters: 17 bytes = 136 bits -> 28 (the
 * last one carries 4 bits of padding, always zero); 20 bytes -> 32. */
static void encode_raw(const uint8_t *raw, int n_raw, int n_chars, char out[ID_BYTES_MAX])
{
    int bit = 0;
    for (int c = 0; c < n_chars; c++) {
        int v = 0;
        for (int k = 0; k < 5; k++, bit++) {
            int byte = bit / 8;
            int b = byte < n_raw ? raw[byte] >> (7 - bit % 8) & 1 : 0;
            v = v << 1 | b;
        }
        out[c] = base32_alphabet[v];
    }
    out[n_chars] = '\0';
}

int id_new(int table_number, char out[ID_BYTES_MAX])
{
    ASSERT(table_number >= 1 && table_number <= 255);
    uint8_t raw[ID_RAW_BYTES];
    raw[0] = (uint8_t)table_number;
    uint64_t ms = (uint64_t)clock_now_ms();
    for (int i = 0; i < 6; i++)
        raw[1 + i] = (uint8_t)(ms >> (8 * (5 - i)));
    if (id_random_bytes(raw + 7, 8) != 0) return -1;
    uint16_t sum = fletcher16(raw, 15);
    raw[15] = (uint8_t)(sum >> 8);
    raw[16] = (uint8_t)sum;
    encode_raw(raw, ID_RAW_BYTES, ID_CHARS, out);
    return 0;
}

int id_new_random(int table_number, char out[ID_BYTES_MAX])
{
    ASSERT(table_number >= 1 && table_number <= 255);
    uint8_t raw[ID_RANDOM_RAW_BYTES];
    raw[0] = (uint8_t)table_number;
    if (id_random_bytes(raw + 1, ID_RANDOM_BYTES) != 0) return -1;
    uint16_t sum = fletcher16(raw, 1 + ID_RANDOM_BYTES);
    raw[1 + ID_RANDOM_BYTES] = (uint8_t)(sum >> 8);
    raw[2 + ID_RANDOM_BYTES] = (uint8_t)sum;
    encode_raw(raw, ID_RANDOM_RAW_BYTES, ID_RANDOM_CHARS, out);
    return 0;
}

int id_table_number(const char *id)
{
    size_t len = id ? strlen(id) : 0;
    if (len != ID_CHARS && len != ID_RANDOM_CHARS) return -1;
    int n_raw = len == ID_CHARS ? ID_RAW_BYTES : ID_RANDOM_RAW_BYTES;
    uint8_t raw[ID_RANDOM_RAW_BYTES + 1];
    memset(raw, 0, sizeof raw);
    int bit = 0;
    for (size_t c = 0; c < len; c++) {
        const char *p = strchr(base32_alphabet, id[c]);
        if (!p || !id[c]) return -1;
        int v = (int)(p - base32_alphabet);
        for (int k = 4; k >= 0; k--, bit++) {
            int b = v >> k & 1;
            if (bit / 8 < n_raw)
                raw[bit / 8] |= (uint8_t)(b << (7 - bit % 8));
            else if (b)
                return -1; /* padding bit must be zero */
        }
    }
    uint16_t sum = fletcher16(raw, n_raw - 2);
    if (raw[n_raw - 2] != (uint8_t)(sum >> 8) || raw[n_raw - 1] != (uint8_t)sum) return -1;
    if (raw[0] == 0) return -1;
    return raw[0];
}
