/* SPDX-License-Identifier: MIT */
/* What messages may show of a value (lib/core/redact.c, private:
 * compiled in): keys in hex or base64 are recognised wherever they sit
 * in a value, and the values people type -- paths, sizes, addresses,
 * names, cipher specs -- are not mistaken for keys. */
#include "unit.h"
#include <nexus/nexus_driver.h>
#include "redact.h"

static void test_keys(void)
{
	static const char *const keys[] = {
		/* AES-256-XTS and AES-128-XTS keys in hex */
		"00112233445566778899aabbccddeeff8899aabbccddeeff0011223344556677",
		"00112233445566778899AABBCCDDEEFF",
		"0123456789abcdef",
		/* 32 and 16 bytes in base64 */
		"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
		"Kq83vEjRWeJCrze8SN+/",
		/* inside other text */
		"/etc/keys/00112233445566778899aabbccddeeff.key",
		"K=q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ",
		"0x00112233445566778899",
		NULL,
	};

	for (unsigned i = 0; keys[i]; i++) {
		if (!nx_looks_like_key(keys[i]))
			fprintf(stderr, "\nnot recognised: %s\n", keys[i]);
		CU_ASSERT(nx_looks_like_key(keys[i]));
	}
}

static void test_plain_values(void)
{
	static const char *const plain[] = {
		"/var/lib/libnexus/volumes/database-primary.img",
		"/home/Alice/Images2024/Backup/vol.img",
		"/tmp/nexus-tools.AbC9xY/k",
		"aes-xts-plain64", "127.0.0.1:10809", "[::1]:10809",
		"0x100000", "64KiB", "1G", "99999999999999999999",
		"deadbeef", "VOLKEY", "ThisIsMyVolumeName2024",
		"nbd://localhost:10809/export", "read+write+flush",
		"", NULL,
	};

	for (unsigned i = 0; plain[i]; i++) {
		if (nx_looks_like_key(plain[i]))
			fprintf(stderr, "\ntaken for a key: %s\n", plain[i]);
		CU_ASSERT(!nx_looks_like_key(plain[i]));
	}
	CU_ASSERT(!nx_looks_like_key(NULL));
}

static void test_shown(void)
{
	const struct nexus_option_desc plain = { .name = "path" };
	const struct nexus_option_desc secret = { .name = "key",
						  .flags = NEXUS_OPTF_SECRET };
	const char *v = "/tmp/a.img";

	CU_ASSERT_PTR_EQUAL(nx_value_shown(&plain, v), v);
	CU_ASSERT_STRING_EQUAL(nx_value_shown(&secret, v), NX_SECRET_SHOWN);
	/* an option the driver does not know is not known to be harmless */
	CU_ASSERT_STRING_EQUAL(nx_value_shown(NULL, v), NX_SECRET_SHOWN);
	CU_ASSERT_STRING_EQUAL(nx_value_shown(&plain,
					      "0011223344556677aabbccdd"),
			       NX_SECRET_SHOWN);
	CU_ASSERT_PTR_NULL(nx_value_shown(&plain, NULL));
}

static const struct unit_test tests[] = {
	{ "keys are recognised", test_keys },
	{ "plain values are shown", test_plain_values },
	{ "secret and unknown options are hidden", test_shown },
	{ NULL, NULL },
};

int main(void)
{
	return unit_main("redact", tests);
}
