/* SPDX-License-Identifier: MIT */
/* The etcd state store (a mirror's state=etcd://HOST:PORT/PREFIX): the
 * record is the value of the key PREFIX/state in an etcd v3 cluster,
 * reached through etcd's JSON gateway (HTTP POST /v3/..., keys and
 * values in base64) with libcurl.
 *
 * Ownership.  At open the store grants a lease of ttl seconds and, in
 * one transaction, creates PREFIX/owner = "HOST:PID:RANDOM" attached to
 * it -- only if that key does not exist; otherwise the open is refused
 * (-EBUSY) naming the holder.  A thread keeps the lease alive (every
 * ttl/3) until close, which revokes it, and so deletes PREFIX/owner.
 *
 * Fencing.  Every put is a transaction that writes PREFIX/state only if
 * PREFIX/owner is still our id.  Ids are unique and only their process
 * creates them, so a process whose lease expired (stopped, or cut off
 * from etcd for longer than the TTL) never passes that compare again,
 * whoever owns the volume since: its puts fail with -ESTALE ("lost
 * ownership") and the mirror fails the writes waiting for them instead
 * of acknowledging them.  An old owner's put that etcd applies late is
 * either before the new owner's acquire (which then reads it) or fails
 * its compare.  (No compare on the record's revision: a put whose
 * answer was lost -- a timeout -- may still be applied, and would then
 * fence out its own writer for good.)  The mirror also stops writing
 * its children (owned()) once the last renewal etcd answered was sent
 * more than nine tenths of the TTL ago -- our lease may have expired
 * then, in etcd's time, which starts later -- or once a put found the
 * volume lost.  etcd unreachable or not answering: a request fails with
 * -EIO within REQ_TIMEOUT_MS; no failure is ever reported as success.
 *
 * Everything etcd answers is untrusted: types and sizes are checked, and
 * text from it is made printable before it goes into a message. */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <nexus/nexus_driver.h> /* nexus_error() */

#include "clock.h"
#include "store.h"

#define SCHEME "etcd://"
/* connect and whole-request bound of every call to etcd */
#define REQ_TIMEOUT_MS 2000
/* largest answer read: one record in base64 and its JSON around it */
#define ANSWER_MAX (2 * NX_STORE_MAX + 65536)
#define HOST_MAX 253
#define PREFIX_MAX 200
#define PREFIX_CHARS                                                       \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/"
#define HOST_CHARS                                                         \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
/* an owner id as we write it, or as we show another's */
#define ID_MAX 320

struct etcd_url {
	char host[HOST_MAX + 3]; /* with the brackets of an IPv6 address */
	unsigned port;
	char prefix[PREFIX_MAX + 1];
};

struct etcd_store {
	struct nx_store s; /* first: the generic part; where = the URL */
	char base[HOST_MAX + 16]; /* http://HOST:PORT */
	char *owner_key, *state_key; /* base64 of PREFIX/owner, PREFIX/state */
	char id[ID_MAX];	      /* our owner id */
	char *id64;		      /* its base64 */
	unsigned ttl;		      /* seconds, as granted */
	int64_t lease;		      /* 0: none granted */
	/* nx_now_ns() until which our lease surely holds: a keepalive's
	 * send time + its TTL less a tenth (0: lost) */
	_Atomic uint64_t owned_until;
	/* a put found PREFIX/owner gone or another's: lost for good, even
	 * if our lease lives on (the key deleted by hand) */
	_Atomic bool gone;
	struct curl_slist *headers;
	CURL *h;    /* get, put, open, close: one caller at a time */
	CURL *ka_h; /* the keepalive thread's */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t ka_thread;
	bool ka_running, stop;
};

/* ---- the URL ---- */

static int bad_url(const char *url, const char *why)
{
	return nexus_error(-EINVAL, "state=%s: %s (expected "
			   SCHEME "HOST:PORT/PREFIX)", url, why);
}

/* "etcd://HOST:PORT/PREFIX": HOST a name or IPv4 address, or an IPv6
 * address in brackets; PORT 1..65535; PREFIX of letters, digits, '.',
 * '_', '-' and '/' (not at either end, no "//"). */
static int parse_url(const char *url, struct etcd_url *u)
{
	const char *h = url + strlen(SCHEME), *p;
	unsigned long port;
	size_t n, hn;
	char *end;

	if (strncmp(url, SCHEME, strlen(SCHEME)))
		return bad_url(url, "not an etcd URL");
	if (*h == '[') {
		n = strspn(h + 1, "0123456789abcdefABCDEF:.");
		if (!n || h[n + 1] != ']')
			return bad_url(url, "bad IPv6 address");
		n += 2;
	} else {
		n = strspn(h, HOST_CHARS);
	}
	if (!n || n > HOST_MAX)
		return bad_url(url, "bad host");
	hn = n;
	p = h + n;
	if (*p++ != ':' || !isdigit((unsigned char)*p))
		return bad_url(url, "no :PORT after the host");
	errno = 0;
	port = strtoul(p, &end, 10);
	if (errno || !port || port > 65535)
		return bad_url(url, "the port is not in 1..65535");
	if (*end != '/')
		return bad_url(url, "no /PREFIX after the port");
	p = end + 1;
	n = strlen(p);
	if (!n || n > PREFIX_MAX || strspn(p, PREFIX_CHARS) != n ||
	    p[0] == '/' || p[n - 1] == '/' || strstr(p, "//"))
		return bad_url(url, "PREFIX must be 1 to 200 of A-Z a-z 0-9 "
			       ". _ - /, with no / at either end and no //");
	memcpy(u->host, h, hn);
	u->host[hn] = 0;
	u->port = (unsigned)port;
	memcpy(u->prefix, p, n + 1);
	return 0;
}

int nx_store_etcd_check(const char *url)
{
	struct etcd_url u;

	return parse_url(url, &u);
}

/* ---- base64, JSON ---- */

/* Base64 of @p len bytes, malloc'd and NUL-terminated (NULL: no memory) */
static char *b64(const void *p, size_t len)
{
	char *s = malloc(4 * ((len + 2) / 3) + 1);

	if (s)
		EVP_EncodeBlock((unsigned char *)s, p, (int)len);
	return s;
}

/* Decode the base64 @p s (@p n characters) into a malloc'd buffer *out:
 * its length, or -EPROTO when @p s is not base64, -ENOMEM. */
static int unb64(const char *s, size_t n, unsigned char **out)
{
	size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
	int len;

	if (n % 4 || n > INT32_MAX)
		return -EPROTO;
	*out = malloc(n / 4 * 3 + 1);
	if (!*out)
		return -ENOMEM;
	len = n ? EVP_DecodeBlock(*out, (const unsigned char *)s, (int)n) : 0;
	if (len < (int)pad) {
		free(*out);
		*out = NULL;
		return -EPROTO;
	}
	return len - (int)pad;
}

/* Text from etcd made fit for a message: into @p buf, at most @p cap - 1
 * bytes, anything not printable ASCII as '?'. */
static const char *printable(const char *s, size_t n, char *buf, size_t cap)
{
	size_t i;

	for (i = 0; i < n && i + 1 < cap; i++)
		buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	buf[i] = 0;
	return buf;
}

/* Member @p key of the object @p o when it has the type @p t, else NULL */
static json_object *member(json_object *o, const char *key, json_type t)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

/* An int64 member: the gateway writes them as decimal strings, and
 * leaves them out when 0.  0, or -1 when it is something else. */
static int member_i64(json_object *o, const char *key, int64_t *v)
{
	json_object *x;
	const char *s;
	char *end;

	*v = 0;
	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &x) || !x)
		return 0;
	if (json_object_is_type(x, json_type_int)) {
		*v = json_object_get_int64(x);
		return 0;
	}
	if (!json_object_is_type(x, json_type_string))
		return -1;
	s = json_object_get_string(x);
	if (!isdigit((unsigned char)*s) && !(*s == '-' && isdigit((unsigned char)s[1])))
		return -1;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static json_object *str_i64(int64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRId64, v);
	return json_object_new_string(s);
}

/* {"KEY": V} */
static json_object *obj1(const char *key, json_object *v)
{
	json_object *o = json_object_new_object();

	if (o)
		json_object_object_add(o, key, v);
	else
		json_object_put(v);
	return o;
}

/* [a] or [a, b] (b NULL: one) */
static json_object *list(json_object *a, json_object *b)
{
	json_object *l = json_object_new_array();

	if (l) {
		json_object_array_add(l, a);
		if (b)
			json_object_array_add(l, b);
	} else {
		json_object_put(a);
		json_object_put(b);
	}
	return l;
}

/* A compare of a txn: TARGET(key) == value, in @p field */
static json_object *compare(const char *key, const char *target,
			    const char *field, json_object *value)
{
	json_object *c = obj1("key", json_object_new_string(key));

	if (c) {
		json_object_object_add(c, "target", json_object_new_string(target));
		json_object_object_add(c, "result", json_object_new_string("EQUAL"));
		json_object_object_add(c, field, value);
	} else {
		json_object_put(value);
	}
	return c;
}

static json_object *op_range(const char *key)
{
	return obj1("request_range", obj1("key", json_object_new_string(key)));
}

static json_object *op_put(const char *key, const char *value, int64_t lease)
{
	json_object *p = obj1("key", json_object_new_string(key));

	if (p) {
		json_object_object_add(p, "value", json_object_new_string(value));
		if (lease)
			json_object_object_add(p, "lease", str_i64(lease));
	}
	return obj1("request_put", p);
}

static json_object *txn(json_object *cmp, json_object *success,
			json_object *failure)
{
	json_object *t = obj1("compare", cmp);

	if (t) {
		json_object_object_add(t, "success", success);
		json_object_object_add(t, "failure", failure);
	} else {
		json_object_put(success);
		json_object_put(failure);
	}
	return t;
}

/* The first key-value of a range answer, or NULL (none) */
static json_object *first_kv(json_object *range)
{
	json_object *kvs = member(range, "kvs", json_type_array), *kv;

	if (!kvs || !json_object_array_length(kvs))
		return NULL;
	kv = json_object_array_get_idx(kvs, 0);
	return json_object_is_type(kv, json_type_object) ? kv : NULL;
}

/* The range answer of response @p i of a txn answer, or NULL */
static json_object *txn_range(json_object *ans, size_t i)
{
	json_object *r = member(ans, "responses", json_type_array);

	if (!r || json_object_array_length(r) <= i)
		return NULL;
	return member(json_object_array_get_idx(r, i), "response_range",
		      json_type_object);
}

/* The base64 member @p key ("value") of a key-value as text for
 * messages, "" when absent or not base64. */
static const char *kv_text(json_object *kv, const char *key, char *buf,
			   size_t cap)
{
	json_object *v = member(kv, key, json_type_string);
	unsigned char *raw;
	int n;

	buf[0] = 0;
	if (v && (n = unb64(json_object_get_string(v),
			    (size_t)json_object_get_string_len(v), &raw)) >= 0) {
		printable((const char *)raw, (size_t)n, buf, cap);
		free(raw);
	}
	return buf;
}

/* ---- HTTP ---- */

struct answer {
	char *p;
	size_t len;
	bool too_large;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	char *q;

	n *= size;
	if (a->len + n > ANSWER_MAX) {
		a->too_large = true;
		return 0;
	}
	q = realloc(a->p, a->len + n + 1);
	if (!q)
		return 0;
	memcpy(q + a->len, data, n);
	a->p = q;
	a->len += n;
	q[a->len] = 0;
	return n;
}

static CURL *new_handle(struct etcd_store *e)
{
	CURL *h = curl_easy_init();

	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)REQ_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)REQ_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* no http_proxy detour */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, e->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	return h;
}

/* POST @p req (consumed) to @p path of the gateway with @p h; the answer,
 * a JSON object, in *out.  0 or a negative errno, with the reason in
 * @p why (not in nexus_error(): the keepalive thread and close use this
 * too and must not overwrite a caller's message). */
static int post(struct etcd_store *e, CURL *h, const char *path,
		json_object *req, json_object **out, char *why, size_t cap)
{
	char url[sizeof(e->base) + 32], msg[200];
	struct answer a = { 0 };
	json_tokener *tok;
	json_object *ans = NULL, *m;
	long code = 0;
	CURLcode cc;
	int rc = 0;

	*out = NULL;
	if (!req) {
		snprintf(why, cap, "out of memory");
		return -ENOMEM;
	}
	snprintf(url, sizeof(url), "%s%s", e->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS,
			 json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
	cc = curl_easy_perform(h);
	json_object_put(req);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (cc != CURLE_OK) {
		snprintf(why, cap, "%s: %s", url, a.too_large
				? "the answer is too large"
				: curl_easy_strerror(cc));
		rc = -EIO;
	} else if (!(tok = json_tokener_new())) {
		snprintf(why, cap, "out of memory");
		rc = -ENOMEM;
	} else {
		ans = a.len ? json_tokener_parse_ex(tok, a.p, (int)a.len) : NULL;
		json_tokener_free(tok);
		if (!json_object_is_type(ans, json_type_object)) {
			snprintf(why, cap, "%s: HTTP %ld, not a JSON object",
				 url, code);
			rc = -EPROTO;
		} else if (code != 200 || member(ans, "error", json_type_object) ||
			   member(ans, "error", json_type_string)) {
			m = member(ans, "message", json_type_string);
			if (!m)
				m = member(ans, "error", json_type_string);
			if (!m) /* a stream's {"error": {"message": ...}} */
				m = member(member(ans, "error", json_type_object),
					   "message", json_type_string);
			snprintf(why, cap, "%s: HTTP %ld: %s", url, code,
				 m ? printable(json_object_get_string(m),
					       (size_t)json_object_get_string_len(m),
					       msg, sizeof(msg))
				   : "error");
			rc = -EIO;
		}
	}
	free(a.p);
	if (rc)
		json_object_put(ans);
	else
		*out = ans;
	return rc;
}

/* post() for a caller that reports: the reason with nexus_error() */
static int call(struct etcd_store *e, const char *path, json_object *req,
		json_object **out)
{
	char why[512];
	int rc = post(e, e->h, path, req, out, why, sizeof(why));

	return rc ? nexus_error(rc, "%s: %s", e->s.where, why) : 0;
}

/* The lease, renewed at @p sent_ns for @p ttl seconds, holds until */
static void owned_for(struct etcd_store *e, uint64_t sent_ns, int64_t ttl)
{
	atomic_store(&e->owned_until,
		     ttl > 0 ? sent_ns + (uint64_t)ttl * 900000000u : 0);
}

static int bad_answer(struct etcd_store *e, const char *what)
{
	return nexus_error(-EPROTO, "%s: unexpected answer from etcd to %s",
			   e->s.where, what);
}

/* ---- the lease ---- */

static int lease_grant(struct etcd_store *e)
{
	uint64_t sent = nx_now_ns();
	json_object *ans;
	int64_t id, ttl;
	int rc = call(e, "/v3/lease/grant",
		      obj1("TTL", json_object_new_int64(e->ttl)), &ans);

	if (rc)
		return rc;
	if (member_i64(ans, "ID", &id) || id <= 0 || member_i64(ans, "TTL", &ttl) ||
	    ttl <= 0 || ttl > 1000000)
		rc = bad_answer(e, "lease/grant");
	else {
		e->lease = id;
		e->ttl = (unsigned)ttl; /* etcd may raise a short one */
		owned_for(e, sent, ttl);
	}
	json_object_put(ans);
	return rc;
}

/* Seconds the lease @p id has left, -1 when unknown or expired */
static int64_t lease_left(struct etcd_store *e, int64_t id)
{
	char why[512];
	json_object *ans;
	int64_t left;

	if (post(e, e->h, "/v3/lease/timetolive", obj1("ID", str_i64(id)),
		 &ans, why, sizeof(why)))
		return -1;
	if (member_i64(ans, "TTL", &left))
		left = -1;
	json_object_put(ans);
	return left;
}

/* One keepalive (with the thread's handle): 1 when the lease is gone, 0
 * when renewed, a negative errno when etcd did not answer or answered
 * nonsense (tried again at the next tick). */
static int lease_renew(struct etcd_store *e)
{
	uint64_t sent = nx_now_ns();
	char why[512];
	json_object *ans, *res;
	int64_t ttl;
	int rc = post(e, e->ka_h, "/v3/lease/keepalive",
		      obj1("ID", str_i64(e->lease)), &ans, why, sizeof(why));

	if (rc)
		return rc;
	/* the gateway streams: {"result": {"ID": ..., "TTL": ...}}, TTL
	 * left out once the lease is gone; anything else: try again */
	res = member(ans, "result", json_type_object);
	if (!res || member_i64(res, "TTL", &ttl)) {
		rc = -EPROTO;
	} else {
		owned_for(e, sent, ttl);
		rc = ttl <= 0;
	}
	json_object_put(ans);
	return rc;
}

static void *keepalive_main(void *arg)
{
	struct etcd_store *e = arg;
	long every_ms = e->ttl * 1000L / 3, wait_ms = every_ms;
	struct timespec t;
	int rc;

	pthread_mutex_lock(&e->lock);
	while (!e->stop) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_sec += wait_ms / 1000;
		t.tv_nsec += wait_ms % 1000 * 1000000;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		while (!e->stop &&
		       pthread_cond_timedwait(&e->cond, &e->lock, &t) != ETIMEDOUT)
			;
		if (e->stop)
			break;
		pthread_mutex_unlock(&e->lock);
		rc = lease_renew(e);
		/* lease gone: the next put says "lost ownership" */
		if (rc == 1)
			return NULL;
		/* one that failed is tried again soon: the lease runs */
		wait_ms = rc && every_ms > 500 ? 500 : every_ms;
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

static int keepalive_start(struct etcd_store *e)
{
	int rc = pthread_create(&e->ka_thread, NULL, keepalive_main, e);

	if (rc)
		return nexus_error(-rc, "%s: cannot start the lease's thread: %s",
				   e->s.where, strerror(rc));
	e->ka_running = true;
	return 0;
}

/* ---- ownership ---- */

/* The refusal of an open: who owns the volume, until when */
static int owned_by(struct etcd_store *e, json_object *owner)
{
	char who[ID_MAX];
	int64_t lease = 0, left = -1;

	kv_text(owner, "value", who, sizeof(who));
	if (member_i64(owner, "lease", &lease) || !lease)
		return nexus_error(-EBUSY, "%s: volume owned by %s (without a "
				   "lease: delete the key by hand if that owner "
				   "is gone)", e->s.where, *who ? who : "?");
	left = lease_left(e, lease);
	if (left < 0)
		return nexus_error(-EBUSY, "%s: volume owned by %s (its lease "
				   "is expiring)", e->s.where, *who ? who : "?");
	return nexus_error(-EBUSY, "%s: volume owned by %s (lease expires "
			   "within %" PRId64 " s)", e->s.where,
			   *who ? who : "?", left);
}

/* Whether a txn answer says its compares held ("succeeded" is left out
 * when false) */
static bool succeeded(json_object *ans)
{
	json_object *ok = member(ans, "succeeded", json_type_boolean);

	return ok && json_object_get_boolean(ok);
}

/* PREFIX/owner = our id with our lease, if no one owns the volume */
static int acquire(struct etcd_store *e)
{
	json_object *ans, *kv;
	int rc = call(e, "/v3/kv/txn",
		      txn(list(compare(e->owner_key, "CREATE", "create_revision",
				       str_i64(0)), NULL),
			  list(op_put(e->owner_key, e->id64, e->lease), NULL),
			  list(op_range(e->owner_key), NULL)),
		      &ans);

	if (rc)
		return rc;
	if (!succeeded(ans)) {
		kv = first_kv(txn_range(ans, 0));
		rc = kv ? owned_by(e, kv) : bad_answer(e, "the owner's txn");
	}
	json_object_put(ans);
	return rc;
}

/* Why a put's compare failed: @p owner is PREFIX/owner as found (NULL:
 * absent) */
static int lost(struct etcd_store *e, json_object *owner)
{
	char who[ID_MAX];

	kv_text(owner, "value", who, sizeof(who));
	if (!owner || strcmp(who, e->id))
		atomic_store(&e->gone, true); /* no data write either */
	if (!owner)
		return nexus_error(-ESTALE, "%s: lost ownership: the owner key "
				   "is gone (our lease expired: etcd unreachable, "
				   "or this process stopped, for longer than %u "
				   "s; or it was deleted)", e->s.where, e->ttl);
	if (strcmp(who, e->id))
		return nexus_error(-ESTALE, "%s: lost ownership: the volume is "
				   "now owned by %s", e->s.where, *who ? who : "?");
	return bad_answer(e, "the record's txn");
}

/* ---- the ops ---- */

static int etcd_get(struct nx_store *s, char *buf, size_t cap)
{
	struct etcd_store *e = (struct etcd_store *)s;
	json_object *ans, *kv, *v = NULL;
	unsigned char *raw = NULL;
	int rc = call(e, "/v3/kv/range",
		      obj1("key", json_object_new_string(e->state_key)), &ans);

	if (rc)
		return rc;
	kv = first_kv(ans);
	/* no key: no record yet; an empty value is left out */
	if (!kv || !json_object_object_get_ex(kv, "value", &v)) {
		rc = 0;
	} else if (!json_object_is_type(v, json_type_string)) {
		rc = bad_answer(e, "kv/range");
	} else if ((rc = unb64(json_object_get_string(v),
			       (size_t)json_object_get_string_len(v), &raw)) < 0) {
		rc = rc == -ENOMEM ? nexus_error(rc, "out of memory")
				   : bad_answer(e, "kv/range");
	} else if ((size_t)rc >= cap) {
		rc = nexus_error(-EFBIG, "%s: record larger than %zu bytes",
				 s->where, cap - 1);
	} else {
		memcpy(buf, raw, (size_t)rc);
	}
	free(raw);
	json_object_put(ans);
	return rc;
}

static int etcd_put(struct nx_store *s, const char *buf, size_t len)
{
	struct etcd_store *e = (struct etcd_store *)s;
	json_object *ans;
	char *val = b64(buf, len);
	int rc;

	if (!val)
		return nexus_error(-ENOMEM, "out of memory");
	rc = call(e, "/v3/kv/txn",
		  txn(list(compare(e->owner_key, "VALUE", "value",
				   json_object_new_string(e->id64)), NULL),
		      list(op_put(e->state_key, val, 0), NULL),
		      list(op_range(e->owner_key), NULL)),
		  &ans);
	free(val);
	if (rc)
		return rc;
	if (!succeeded(ans))
		rc = lost(e, first_kv(txn_range(ans, 0)));
	json_object_put(ans);
	return rc;
}

static int etcd_owned(struct nx_store *s)
{
	struct etcd_store *e = (struct etcd_store *)s;

	if (atomic_load_explicit(&e->gone, memory_order_relaxed))
		return nexus_error(-ESTALE, "%s: lost ownership: the record "
				   "belongs to another owner or none",
				   s->where);
	if (nx_now_ns() < atomic_load_explicit(&e->owned_until,
						memory_order_relaxed))
		return 0;
	return nexus_error(-ESTALE, "%s: lost ownership: the lease was not "
			   "renewed in time (etcd unreachable, or this process "
			   "stopped, for about %u s)", s->where, e->ttl);
}

static void etcd_close(struct nx_store *s)
{
	struct etcd_store *e = (struct etcd_store *)s;
	json_object *ans;
	char why[512];

	if (e->ka_running) {
		pthread_mutex_lock(&e->lock);
		e->stop = true;
		pthread_cond_signal(&e->cond);
		pthread_mutex_unlock(&e->lock);
		pthread_join(e->ka_thread, NULL);
	}
	/* frees PREFIX/owner at once; when this fails, it expires */
	if (e->lease && e->h &&
	    !post(e, e->h, "/v3/lease/revoke", obj1("ID", str_i64(e->lease)),
		  &ans, why, sizeof(why)))
		json_object_put(ans);
	if (e->h)
		curl_easy_cleanup(e->h);
	if (e->ka_h)
		curl_easy_cleanup(e->ka_h);
	curl_slist_free_all(e->headers);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->owner_key);
	free(e->state_key);
	free(e->id64);
	free(s->where);
	free(e);
}

static const struct nx_store_ops etcd_ops = {
	.get = etcd_get,
	.put = etcd_put,
	.close = etcd_close,
	.owned = etcd_owned,
};

/* ---- open ---- */

static int curl_rc = -1;

static void curl_init(void)
{
	curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

/* base64 of "PREFIX/NAME" */
static char *key64(const struct etcd_url *u, const char *name)
{
	char k[PREFIX_MAX + 16];
	int n = snprintf(k, sizeof(k), "%s/%s", u->prefix, name);

	return b64(k, (size_t)n);
}

/* "HOST:PID:RANDOM", unique among every process that ever opens it */
static int make_id(struct etcd_store *e)
{
	char host[256] = "";
	unsigned char r[8];

	if (gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "unknown");
	if (RAND_bytes(r, sizeof(r)) != 1)
		return nexus_error(-EIO, "%s: no random bytes for the owner id",
				   e->s.where);
	snprintf(e->id, sizeof(e->id), "%s:%ld:%02x%02x%02x%02x%02x%02x%02x%02x",
		 host, (long)getpid(), r[0], r[1], r[2], r[3], r[4], r[5], r[6],
		 r[7]);
	e->id64 = b64(e->id, strlen(e->id));
	return e->id64 ? 0 : nexus_error(-ENOMEM, "out of memory");
}

int nx_store_etcd_open(const char *url, unsigned ttl, struct nx_store **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_condattr_t ca;
	struct etcd_store *e;
	struct etcd_url u;
	int rc = parse_url(url, &u);

	if (rc)
		return rc;
	pthread_once(&once, curl_init);
	if (curl_rc)
		return nexus_error(curl_rc, "%s: libcurl did not initialize", url);
	e = calloc(1, sizeof(*e));
	if (!e)
		return nexus_error(-ENOMEM, "out of memory");
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the keepalives' */
	pthread_cond_init(&e->cond, &ca);
	pthread_condattr_destroy(&ca);
	e->s.ops = &etcd_ops;
	e->s.where = strdup(url);
	e->ttl = ttl ? ttl : NX_STORE_ETCD_TTL;
	snprintf(e->base, sizeof(e->base), "http://%s:%u", u.host, u.port);
	e->owner_key = key64(&u, "owner");
	e->state_key = key64(&u, "state");
	e->headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* no "Expect: 100-continue" wait before a large record */
	if (e->headers && !curl_slist_append(e->headers, "Expect:")) {
		curl_slist_free_all(e->headers);
		e->headers = NULL;
	}
	if (e->headers) {
		e->h = new_handle(e);
		e->ka_h = new_handle(e);
	}
	if (!e->s.where || !e->owner_key || !e->state_key || !e->h || !e->ka_h)
		rc = nexus_error(-ENOMEM, "out of memory");
	if (!rc)
		rc = make_id(e);
	if (!rc)
		rc = lease_grant(e);
	if (!rc)
		rc = acquire(e);
	if (!rc)
		rc = keepalive_start(e);
	if (rc) {
		etcd_close(&e->s); /* revokes the lease, if granted */
		return rc;
	}
	*out = &e->s;
	return 0;
}
