/* SPDX-License-Identifier: MIT */
/* NBD URIs (NetworkBlockDevice doc/uri.md on top of RFC 3986):
 *
 *   nbd://HOST[:PORT][/EXPORT][?QUERY]      TCP (port 10809 by default)
 *   nbd://[IPV6][:PORT][/EXPORT][?QUERY]
 *   nbd+unix:///[EXPORT]?socket=PATH[&...]  Unix domain socket
 *
 * The parser is strict: characters RFC 3986 does not allow in a part
 * must be percent-encoded, every %XX must be valid, unknown schemes,
 * user names, fragments, a host in a unix URI, a missing host or socket
 * and repeated parameters are errors that say what is wrong.  TLS
 * schemes and tls-* parameters are refused (no TLS in this client).
 * Query parameters other than socket= are returned to the driver, which
 * accepts its own option names there. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "nbd-client.h"

#define DEFAULT_PORT "10809"

static bool is_unreserved(int ch)
{
	return isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

static bool is_sub_delim(int ch)
{
	return ch && strchr("!$&'()*+,;=", ch) != NULL;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Check the characters of [s, s+n) against the part's grammar
 * (unreserved, %XX, sub-delims and @p extra), then percent-decode into
 * a new string.  @p nul_ok: a decoded NUL is allowed as first byte. */
static int decode(const char *uri, const char *s, size_t n, const char *extra,
		  const char *what, bool nul_ok, char **out, size_t *outlen)
{
	char *d = malloc(n + 1);
	size_t j = 0;

	if (!d)
		return nexus_error(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '%') {
			int hi = i + 1 < n ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(s[i + 2]) : -1;

			if (hi < 0 || lo < 0) {
				free(d);
				return nexus_error(-EINVAL, "nbd: URI '%s': bad "
						   "percent-encoding at column "
						   "%zu (in the %s)", uri,
						   (size_t)(s - uri) + i + 1,
						   what);
			}
			ch = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (ch == 0 && !(nul_ok && j == 0)) {
				free(d);
				return nexus_error(-EINVAL, "nbd: URI '%s': the "
						   "%s contains an encoded NUL "
						   "byte (%%00)", uri, what);
			}
		} else if (!is_unreserved(ch) && !is_sub_delim(ch) &&
			   !(extra && ch && strchr(extra, ch))) {
			free(d);
			return nexus_error(-EINVAL, "nbd: URI '%s': character "
					   "'%c' at column %zu is not allowed in "
					   "the %s (percent-encode it as %%%02X)",
					   uri, isprint(ch) ? ch : '?',
					   (size_t)(s - uri) + i + 1, what, ch);
		}
		d[j++] = (char)ch;
	}
	d[j] = '\0';
	*out = d;
	if (outlen)
		*outlen = j;
	return 0;
}

void nx_nbdc_uri_free(struct nbdc_uri *u)
{
	if (!u)
		return;
	free(u->host);
	free(u->port);
	free(u->socket);
	free(u->export_name);
	for (unsigned i = 0; i < u->nquery; i++) {
		free(u->qkey[i]);
		free(u->qval[i]);
	}
	memset(u, 0, sizeof(*u));
}

static int parse_authority(const char *uri, const char *a, size_t n,
			   struct nbdc_uri *u)
{
	const char *port = NULL;
	size_t hostlen = n;
	int rc;

	if (memchr(a, '@', n))
		return nexus_error(-EINVAL, "nbd: URI '%s': a user name is only "
				   "used for TLS, which this client does not "
				   "support", uri);
	if (n && a[0] == '[') {
		const char *close = memchr(a, ']', n);

		if (!close)
			return nexus_error(-EINVAL, "nbd: URI '%s': '[' of an "
					   "IPv6 address without ']'", uri);
		hostlen = (size_t)(close - a) + 1;
		for (const char *p = a + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' &&
			    *p != '.' && *p != '%' && !is_unreserved(*p))
				return nexus_error(-EINVAL, "nbd: URI '%s': '%c' "
						   "is not allowed in an IPv6 "
						   "address", uri, *p);
		if (close - a < 3 || !memchr(a + 1, ':', (size_t)(close - a)))
			return nexus_error(-EINVAL, "nbd: URI '%s': '%.*s' is "
					   "not an IPv6 address", uri,
					   (int)hostlen, a);
		/* zone ids are written %25zone (RFC 6874) */
		rc = decode(uri, a + 1, hostlen - 2, ":", "IPv6 address", false,
			    &u->host, NULL);
		if (rc)
			return rc;
		if (hostlen < n && a[hostlen] != ':')
			return nexus_error(-EINVAL, "nbd: URI '%s': expected ':' "
					   "or '/' after ']'", uri);
	} else {
		const char *colon = memchr(a, ':', n);

		if (colon)
			hostlen = (size_t)(colon - a);
		rc = decode(uri, a, hostlen, NULL, "host name", false, &u->host,
			    NULL);
		if (rc)
			return rc;
	}
	if (!*u->host)
		return nexus_error(-EINVAL, "nbd: URI '%s' has no host (write "
				   "nbd://HOST[:PORT]/EXPORT, or nbd+unix:///"
				   "EXPORT?socket=PATH for a Unix socket)", uri);
	if (hostlen < n) {
		unsigned long v = 0;

		port = a + hostlen + 1; /* after ':' */
		for (const char *p = port; p < a + n; p++) {
			if (!isdigit((unsigned char)*p))
				return nexus_error(-EINVAL, "nbd: URI '%s': port "
						   "'%.*s' is not a number",
						   uri, (int)(a + n - port),
						   port);
			v = v * 10 + (unsigned long)(*p - '0');
			if (v > 65535)
				break;
		}
		if (port < a + n && (v == 0 || v > 65535))
			return nexus_error(-EINVAL, "nbd: URI '%s': port '%.*s' "
					   "is out of range (1-65535)", uri,
					   (int)(a + n - port), port);
		if (port < a + n) {
			char buf[8];

			snprintf(buf, sizeof(buf), "%lu", v);
			u->port = strdup(buf);
		}
	}
	if (!u->port)
		u->port = strdup(DEFAULT_PORT);
	return u->port ? 0 : nexus_error(-ENOMEM, "out of memory");
}

static int add_query(const char *uri, const char *q, size_t n,
		     struct nbdc_uri *u)
{
	const char *eq = memchr(q, '=', n);
	size_t klen = eq ? (size_t)(eq - q) : n;
	char *key, *val;
	size_t vlen;
	int rc;

	rc = decode(uri, q, klen, ":@/?", "query", false, &key, NULL);
	if (rc)
		return rc;
	if (!*key) {
		free(key);
		return nexus_error(-EINVAL, "nbd: URI '%s': empty query "
				   "parameter name", uri);
	}
	if (!strncasecmp(key, "tls-", 4)) {
		rc = nexus_error(-EPROTONOSUPPORT, "nbd: URI '%s': %s: TLS is "
				 "not supported by this client", uri, key);
		free(key);
		return rc;
	}
	rc = decode(uri, eq ? eq + 1 : q + n, eq ? n - klen - 1 : 0, ":@/?",
		    "query", !strcmp(key, "socket"), &val, &vlen);
	if (rc) {
		free(key);
		return rc;
	}
	if (!strcmp(key, "socket")) {
		rc = 0;
		if (u->socket)
			rc = nexus_error(-EINVAL, "nbd: URI '%s': socket= given "
					 "twice", uri);
		else if (!u->unix_socket)
			rc = nexus_error(-EINVAL, "nbd: URI '%s': socket= is "
					 "only for nbd+unix:// URIs", uri);
		else if (vlen == 0)
			rc = nexus_error(-EINVAL, "nbd: URI '%s': socket= is "
					 "empty", uri);
		else if (vlen >= sizeof(((struct sockaddr_un *)0)->sun_path))
			rc = nexus_error(-ENAMETOOLONG, "nbd: URI '%s': socket "
					 "path is longer than %zu bytes", uri,
					 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		free(key);
		if (rc) {
			free(val);
			return rc;
		}
		u->socket = val;
		u->socket_len = vlen;
		return 0;
	}
	for (unsigned i = 0; i < u->nquery; i++) {
		if (!strcmp(u->qkey[i], key)) {
			rc = nexus_error(-EINVAL, "nbd: URI '%s': query "
					 "parameter %s given twice", uri, key);
			free(key);
			free(val);
			return rc;
		}
	}
	if (u->nquery == NBDC_URI_MAX_QUERY) {
		free(key);
		free(val);
		return nexus_error(-EINVAL, "nbd: URI '%s': too many query "
				   "parameters", uri);
	}
	u->qkey[u->nquery] = key;
	u->qval[u->nquery] = val;
	u->nquery++;
	return 0;
}

static int parse(const char *uri, struct nbdc_uri *u)
{
	const char *sep = strstr(uri, "://");
	const char *p, *auth, *path, *query;
	size_t slen;
	int rc;

	if (!sep)
		return nexus_error(-EINVAL, "nbd: '%s' is not an NBD URI (write "
				   "nbd://HOST[:PORT]/EXPORT or nbd+unix:///"
				   "EXPORT?socket=PATH)", uri);
	slen = (size_t)(sep - uri);
	if (slen == 3 && !strncasecmp(uri, "nbd", 3)) {
		u->unix_socket = false;
	} else if (slen == 8 && !strncasecmp(uri, "nbd+unix", 8)) {
		u->unix_socket = true;
	} else if ((slen == 4 && !strncasecmp(uri, "nbds", 4)) ||
		   (slen == 9 && !strncasecmp(uri, "nbds+unix", 9))) {
		return nexus_error(-EPROTONOSUPPORT, "nbd: URI '%s': TLS (%.*s) "
				   "is not supported by this client", uri,
				   (int)slen, uri);
	} else {
		return nexus_error(-EINVAL, "nbd: URI '%s': unsupported scheme "
				   "'%.*s' (nbd or nbd+unix)", uri, (int)slen,
				   uri);
	}
	if (strchr(uri, '#'))
		return nexus_error(-EINVAL, "nbd: URI '%s': a fragment ('#') "
				   "has no meaning in an NBD URI", uri);
	auth = sep + 3;
	path = auth + strcspn(auth, "/?");
	query = strchr(path, '?');
	if (u->unix_socket) {
		if (path != auth)
			return nexus_error(-EINVAL, "nbd: URI '%s': nbd+unix "
					   "URIs name no host: write nbd+unix:///"
					   "EXPORT?socket=PATH", uri);
	} else {
		rc = parse_authority(uri, auth, (size_t)(path - auth), u);
		if (rc)
			return rc;
	}
	p = query ? query : path + strlen(path);
	/* the export name is the path without its first '/' */
	rc = decode(uri, *path == '/' ? path + 1 : path,
		    (size_t)(p - path) - (*path == '/'), ":@/", "export name",
		    false, &u->export_name, &slen);
	if (rc)
		return rc;
	if (slen > NBD_MAX_STRING)
		return nexus_error(-ENAMETOOLONG, "nbd: URI '%s': export name "
				   "is longer than %d bytes", uri,
				   NBD_MAX_STRING);
	if (query) {
		for (p = query + 1; *p;) {
			size_t n = strcspn(p, "&");

			if (n == 0)
				return nexus_error(-EINVAL, "nbd: URI '%s': empty "
						   "query parameter", uri);
			rc = add_query(uri, p, n, u);
			if (rc)
				return rc;
			p += n;
			if (*p == '&' && !*++p)
				return nexus_error(-EINVAL, "nbd: URI '%s': empty "
						   "query parameter", uri);
		}
	}
	if (u->unix_socket && !u->socket)
		return nexus_error(-EINVAL, "nbd: URI '%s': nbd+unix needs "
				   "?socket=PATH", uri);
	return 0;
}

int nx_nbdc_uri_parse(const char *text, struct nbdc_uri *u)
{
	int rc;

	memset(u, 0, sizeof(*u));
	if (!text || !*text)
		return nexus_error(-EINVAL, "nbd: empty URI");
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return nexus_error(-EINVAL, "nbd: URI '%s': space or "
					   "non-ASCII character at column %zu "
					   "(percent-encode it)", text,
					   (size_t)(p - text) + 1);
	rc = parse(text, u);
	if (rc)
		nx_nbdc_uri_free(u);
	return rc;
}

void nx_nbdc_uri_server(const struct nbdc_uri *u, char *buf, size_t len)
{
	if (u->unix_socket) {
		if (u->socket_len && u->socket[0] == '\0')
			snprintf(buf, len, "unix:@%s", u->socket + 1);
		else
			snprintf(buf, len, "unix:%s", u->socket);
	} else if (strchr(u->host, ':')) {
		snprintf(buf, len, "[%s]:%s", u->host, u->port);
	} else {
		snprintf(buf, len, "%s:%s", u->host, u->port);
	}
}
