/* SPDX-License-Identifier: MIT */
/* lib/transforms/xts.c: the direct path (the provider's functions) and
 * the EVP path give the same bytes, both ways, for both key sizes, both
 * sector sizes, tweaks near 2^64 and both tweak steps; each path
 * decrypts what it encrypted; and a wrong length is refused.  (The bytes
 * themselves are checked against python3-cryptography by interop.sh.) */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/transforms/xts.h"

#define LEN (64u << 10)

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);        \
			printf(__VA_ARGS__);                               \
			printf("\n");                                      \
			failures++;                                        \
		}                                                          \
	} while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned char rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned char)rng;
}

int main(void)
{
	static unsigned char key[64], plain[LEN], a[LEN], b[LEN], c[LEN];
	static const uint64_t tweaks[] = { 0, 1, 1000003, UINT64_MAX - 40 };
	unsigned cases = 0, direct_seen = 0;

	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = rnd();
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = rnd();
	for (size_t klen = 32; klen <= 64; klen += 32) {
		for (uint32_t ss = 512; ss <= 4096; ss *= 8) {
			struct nx_xts *d = nx_xts_new(key, klen, ss, true);
			struct nx_xts *e = nx_xts_new(key, klen, ss, false);

			CHECK(d && e, "set-up, key %zu sector %u", klen, ss);
			if (!d || !e)
				return 1;
			CHECK(!nx_xts_direct(e), "EVP path asked, direct used");
			direct_seen += nx_xts_direct(d);
			for (unsigned t = 0; t < 4; t++) {
				for (uint64_t step = 1; step <= 8; step *= 8) {
					uint64_t tw = tweaks[t];

					cases++;
					CHECK(!nx_xts_crypt(d, true, a, plain,
							    LEN, tw, step) &&
						      !nx_xts_crypt(e, true, b,
								    plain, LEN,
								    tw, step),
					      "encrypt");
					CHECK(!memcmp(a, b, LEN),
					      "direct and EVP ciphertext "
					      "differ: key %zu sector %u "
					      "tweak %llu step %llu",
					      klen, ss, (unsigned long long)tw,
					      (unsigned long long)step);
					CHECK(memcmp(a, plain, ss),
					      "not encrypted");
					memcpy(c, a, LEN); /* in place */
					CHECK(!nx_xts_crypt(d, false, c, c, LEN,
							    tw, step) &&
						      !memcmp(c, plain, LEN),
					      "direct path round trip");
					CHECK(!nx_xts_crypt(e, false, b, b, LEN,
							    tw, step) &&
						      !memcmp(b, plain, LEN),
					      "EVP path round trip");
				}
			}
			/* a tweak is per sector: sector 1 alone, with tweak
			 * tw+step, is the second sector of the run */
			CHECK(!nx_xts_crypt(d, true, a, plain, 2 * ss, 7, 1) &&
				      !nx_xts_crypt(e, true, b, plain + ss, ss,
						    8, 1) &&
				      !memcmp(a + ss, b, ss),
			      "second sector's tweak");
			CHECK(nx_xts_crypt(d, true, a, plain, ss + 16, 0, 1) ==
				      -EIO,
			      "a length that is not whole sectors");
			nx_xts_free(d);
			nx_xts_free(e);
		}
	}
	CHECK(!nx_xts_new(key, 48, 512, true), "48-byte key accepted");
	CHECK(!nx_xts_new(key, 64, 500, true), "500-byte sector accepted");
	printf("%u cases, direct path used in %u of 4 set-ups\n", cases,
	       direct_seen);
	printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
	return failures ? 1 : 0;
}
