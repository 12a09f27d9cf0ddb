/* SPDX-License-Identifier: MIT */
/* AES-XTS by sector, with OpenSSL's implementation.
 *
 * Each sector is one XTS data unit: its tweak must be set before it is
 * en- or decrypted.  Through EVP that is EVP_CipherInit_ex() per sector,
 * and in OpenSSL 3.0 that call looks up the IV length and padding
 * through parameter tables (string compares): it costs more than
 * encrypting a 512-byte sector and a fifth of a 4096-byte one.  So we
 * fetch the cipher through EVP as usual (the library configuration and
 * its provider choice apply), then ask that provider for the same
 * cipher's dispatch table (OSSL_PROVIDER_query_operation, public API)
 * and call its init and update functions directly: the same code does
 * the same work, without the EVP layer around each sector.  If the
 * provider does not answer for the cipher, the EVP path is used.
 * tests/crypt checks the bytes against independent implementations. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "xts.h"

struct nx_xts {
	EVP_CIPHER *cipher; /* keeps its provider loaded */
	uint32_t sector_size;
	/* direct path: the provider's cipher contexts and functions */
	void *enc, *dec;
	OSSL_FUNC_cipher_encrypt_init_fn *einit;
	OSSL_FUNC_cipher_decrypt_init_fn *dinit;
	OSSL_FUNC_cipher_update_fn *update;
	OSSL_FUNC_cipher_freectx_fn *freectx;
	/* EVP path */
	EVP_CIPHER_CTX *eenc, *edec;
};

/* Whether the provider's colon-separated @names include @name. */
static bool has_name(const char *names, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = names; p && *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && !strncasecmp(p, name, n))
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* Set up the direct path; false (nothing kept) when it is unavailable. */
static bool direct_init(struct nx_xts *x, const char *name,
			const unsigned char *key, size_t key_len)
{
	const OSSL_PROVIDER *prov = EVP_CIPHER_get0_provider(x->cipher);
	OSSL_FUNC_cipher_newctx_fn *newctx = NULL;
	const OSSL_DISPATCH *d = NULL;
	const OSSL_ALGORITHM *algs, *a;
	int no_cache = 0;

	if (!prov)
		return false;
	algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
	for (a = algs; a && a->algorithm_names; a++)
		if (has_name(a->algorithm_names, name)) {
			d = a->implementation;
			break;
		}
	for (; d && d->function_id; d++) {
		switch (d->function_id) {
		case OSSL_FUNC_CIPHER_NEWCTX:
			newctx = OSSL_FUNC_cipher_newctx(d);
			break;
		case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
			x->einit = OSSL_FUNC_cipher_encrypt_init(d);
			break;
		case OSSL_FUNC_CIPHER_DECRYPT_INIT:
			x->dinit = OSSL_FUNC_cipher_decrypt_init(d);
			break;
		case OSSL_FUNC_CIPHER_UPDATE:
			x->update = OSSL_FUNC_cipher_update(d);
			break;
		case OSSL_FUNC_CIPHER_FREECTX:
			x->freectx = OSSL_FUNC_cipher_freectx(d);
			break;
		}
	}
	if (algs)
		OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
	if (!newctx || !x->einit || !x->dinit || !x->update || !x->freectx)
		return false;
	x->enc = newctx(OSSL_PROVIDER_get0_provider_ctx(prov));
	x->dec = newctx(OSSL_PROVIDER_get0_provider_ctx(prov));
	if (x->enc && x->dec && x->einit(x->enc, key, key_len, NULL, 0, NULL) &&
	    x->dinit(x->dec, key, key_len, NULL, 0, NULL))
		return true;
	if (x->enc)
		x->freectx(x->enc);
	if (x->dec)
		x->freectx(x->dec);
	x->enc = x->dec = NULL;
	return false;
}

static EVP_CIPHER_CTX *evp_ctx(const EVP_CIPHER *c, const unsigned char *key,
			       int enc)
{
	EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();

	if (x && !EVP_CipherInit_ex(x, c, NULL, key, NULL, enc)) {
		EVP_CIPHER_CTX_free(x);
		x = NULL;
	}
	return x;
}

void nx_xts_free(struct nx_xts *x)
{
	if (!x)
		return;
	if (x->enc) /* the provider wipes its key schedules */
		x->freectx(x->enc);
	if (x->dec)
		x->freectx(x->dec);
	EVP_CIPHER_CTX_free(x->eenc); /* so does EVP */
	EVP_CIPHER_CTX_free(x->edec);
	EVP_CIPHER_free(x->cipher);
	free(x);
}

struct nx_xts *nx_xts_new(const unsigned char *key, size_t key_len,
			  uint32_t sector_size, bool direct)
{
	const char *name = key_len == 64 ? "AES-256-XTS" : "AES-128-XTS";
	struct nx_xts *x;

	if ((key_len != 64 && key_len != 32) || !sector_size ||
	    sector_size % 16 || sector_size > (1u << 20))
		return NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->sector_size = sector_size;
	x->cipher = EVP_CIPHER_fetch(NULL, name, NULL);
	if (!x->cipher) {
		free(x);
		return NULL;
	}
	if (!direct || !direct_init(x, name, key, key_len)) {
		x->eenc = evp_ctx(x->cipher, key, 1);
		x->edec = evp_ctx(x->cipher, key, 0);
		if (!x->eenc || !x->edec) {
			nx_xts_free(x);
			return NULL;
		}
	}
	return x;
}

bool nx_xts_direct(const struct nx_xts *x)
{
	return x->enc != NULL;
}

int nx_xts_crypt(struct nx_xts *x, bool enc, unsigned char *out,
		 const unsigned char *in, size_t len, uint64_t tweak,
		 uint64_t step)
{
	uint32_t ss = x->sector_size;
	unsigned char iv[16] = { 0 };

	if (len % ss)
		return -EIO;
	for (size_t pos = 0; pos < len; pos += ss, tweak += step) {
		for (unsigned i = 0; i < 8; i++) /* plain64: little-endian */
			iv[i] = (unsigned char)(tweak >> (8 * i));
		if (x->enc) {
			void *c = enc ? x->enc : x->dec;
			size_t ol = 0;
			int ok = enc ? x->einit(c, NULL, 0, iv, 16, NULL)
				     : x->dinit(c, NULL, 0, iv, 16, NULL);

			if (!ok || !x->update(c, out + pos, &ol, ss, in + pos,
					      ss) || ol != ss)
				return -EIO;
		} else {
			EVP_CIPHER_CTX *c = enc ? x->eenc : x->edec;
			int ol = 0;

			/* enc, not -1: spares a parameter lookup */
			if (!EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, enc) ||
			    !EVP_CipherUpdate(c, out + pos, &ol, in + pos,
					      (int)ss) || ol != (int)ss)
				return -EIO;
		}
	}
	return 0;
}
