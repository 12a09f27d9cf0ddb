/* SPDX-License-Identifier: MIT */
/* The pipeline language (see doc/nexus-pipeline.7):
 *
 *   pipeline := element ( '|' stage )*
 *   element  := stage | '(' pipeline ( ';' pipeline )* ')'
 *   stage    := NAME [ ':' arg ( ',' arg )* ] | SCHEME '://' REST
 *   arg      := KEY '=' VALUE | VALUE          (a VALUE alone: positional)
 *   VALUE    := text without , | ; ( ) or a '...' / "..." quoted string
 *
 * The first element is a source or a group of child pipelines; middle
 * stages are transforms; the last stage may be an export.  Errors name
 * the stage and the column. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct nexus_pipeline {
	struct nexus_ctx *ctx;
	struct nexus_dev *dev;
	struct nexus_export *exp;
	struct nexus_pipeline *next;
};

struct cursor {
	const char *s;
	size_t i;
	unsigned stage_no;
	unsigned depth;
	size_t vstart, vend; /* the last value read, quotes included */
};

static unsigned col(const struct cursor *c)
{
	return (unsigned)c->i + 1;
}

static void skip_ws(struct cursor *c)
{
	while (c->s[c->i] && isspace((unsigned char)c->s[c->i]))
		c->i++;
}

static int syntax(const struct cursor *c, const char *what)
{
	return nexus_error(-EINVAL, "pipeline: column %u (stage %u): %s",
			   col(c), c->stage_no, what);
}

static bool is_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '-' || ch == '_' ||
	       ch == '+' || ch == '.';
}

/* Read a value: quoted, or bare up to a delimiter (trimmed). */
static int read_value(struct cursor *c, char **out, bool uri)
{
	const char *s = c->s;
	size_t start, end;

	skip_ws(c);
	if (s[c->i] == '\'' || s[c->i] == '"') {
		char q = s[c->i++];

		start = c->i;
		while (s[c->i] && s[c->i] != q)
			c->i++;
		if (!s[c->i])
			return syntax(c, "unterminated quoted value");
		end = c->i++;
		c->vstart = start - 1;
		c->vend = c->i;
	} else {
		start = c->i;
		while (s[c->i] && s[c->i] != '|' && s[c->i] != ';' &&
		       s[c->i] != ')' && (uri || s[c->i] != ','))
			c->i++;
		end = c->i;
		while (end > start && isspace((unsigned char)s[end - 1]))
			end--;
		c->vstart = start;
		c->vend = end;
	}
	*out = strndup(s + start, end - start);
	return *out ? 0 : nexus_error(-ENOMEM, "out of memory");
}

static int add_kv(struct cursor *c, struct nx_stage *st, char *key, char *val)
{
	if (st->opts.n == NX_MAX_OPTS) {
		free(key);
		free(val);
		return syntax(c, "too many options");
	}
	st->opts.kv[st->opts.n].key = key;
	st->opts.kv[st->opts.n].val = val;
	st->opts.kv[st->opts.n].vstart = c->vstart;
	st->opts.kv[st->opts.n].vend = c->vend;
	st->opts.n++;
	return 0;
}

static int parse_pipeline(struct cursor *c, struct nx_stage **out);

static int parse_args(struct cursor *c, struct nx_stage *st)
{
	for (unsigned n = 0;; n++) {
		size_t kstart, kend;
		char *key = NULL, *val = NULL;
		int rc;

		skip_ws(c);
		kstart = c->i;
		while (is_name_char(c->s[c->i]))
			c->i++;
		kend = c->i;
		skip_ws(c); /* "key = value" is "key=value" */
		if (c->s[c->i] == '=' && kend > kstart) {
			key = strndup(c->s + kstart, kend - kstart);
			if (!key)
				return nexus_error(-ENOMEM, "out of memory");
			c->i++;
		} else {
			c->i = kstart;
			if (n != 0)
				return syntax(c, "expected key=value (only the "
						 "first value may be given "
						 "without a key)");
			key = strdup(""); /* positional */
			if (!key)
				return nexus_error(-ENOMEM, "out of memory");
		}
		rc = read_value(c, &val, false);
		if (rc) {
			free(key);
			return rc;
		}
		rc = add_kv(c, st, key, val);
		if (rc)
			return rc;
		skip_ws(c);
		if (c->s[c->i] != ',')
			return 0;
		c->i++;
	}
}

static int parse_stage(struct cursor *c, struct nx_stage **out, bool first)
{
	struct nx_stage *st;
	size_t start;
	int rc;

	skip_ws(c);
	c->stage_no++;
	st = calloc(1, sizeof(*st));
	if (!st)
		return nexus_error(-ENOMEM, "out of memory");
	st->column = col(c);
	*out = st;
	start = c->i;
	if (c->s[c->i] == '(') {
		if (!first) {
			return syntax(c, "a group '( ... ; ... )' may only start "
					 "a pipeline");
		}
		if (++c->depth > 8)
			return syntax(c, "groups nested too deeply");
		c->i++;
		for (;;) {
			if (st->ngroups == NX_MAX_CHILDREN)
				return syntax(c, "too many pipelines in a group");
			rc = parse_pipeline(c, &st->groups[st->ngroups]);
			if (st->groups[st->ngroups])
				st->ngroups++;
			if (rc)
				return rc;
			skip_ws(c);
			if (c->s[c->i] == ';') {
				c->i++;
				continue;
			}
			if (c->s[c->i] != ')')
				return syntax(c, "expected ';' or ')' in a group");
			c->i++;
			break;
		}
		c->depth--;
		st->text = strndup(c->s + start, c->i - start);
		return st->text ? 0 : nexus_error(-ENOMEM, "out of memory");
	}
	while (is_name_char(c->s[c->i]))
		c->i++;
	if (c->i == start)
		return syntax(c, c->s[c->i] ? "expected a driver name"
					    : "empty stage");
	if (!strncmp(c->s + c->i, "://", 3)) {
		/* a URI: the driver is the scheme before any '+' */
		size_t n = c->i - start;
		const char *plus = memchr(c->s + start, '+', n);
		char *val;

		st->driver = strndup(c->s + start,
				     plus ? (size_t)(plus - (c->s + start)) : n);
		c->i = start;
		rc = st->driver ? read_value(c, &val, true)
				: nexus_error(-ENOMEM, "out of memory");
		if (rc)
			return rc;
		rc = add_kv(c, st, strdup(""), val);
		if (rc == 0) /* hidden, if secret: what follows "scheme://" */
			st->opts.kv[0].vstart = start + n + 3;
	} else {
		st->driver = strndup(c->s + start, c->i - start);
		if (!st->driver)
			return nexus_error(-ENOMEM, "out of memory");
		skip_ws(c);
		rc = 0;
		if (c->s[c->i] == ':') {
			c->i++;
			rc = parse_args(c, st);
		}
	}
	if (rc)
		return rc;
	for (unsigned i = 0; i < st->opts.n; i++) { /* relative to the text */
		st->opts.kv[i].vstart -= start;
		st->opts.kv[i].vend -= start;
	}
	st->text = strndup(c->s + start, c->i - start);
	return st->text ? 0 : nexus_error(-ENOMEM, "out of memory");
}

static int parse_pipeline(struct cursor *c, struct nx_stage **out)
{
	struct nx_stage **tail = out;
	int rc;

	*out = NULL;
	for (bool first = true;; first = false) {
		rc = parse_stage(c, tail, first);
		if (rc)
			return rc;
		tail = &(*tail)->next;
		skip_ws(c);
		if (c->s[c->i] != '|')
			return 0;
		c->i++;
	}
}

void nx_pipeline_free_stages(struct nx_stage *s)
{
	while (s) {
		struct nx_stage *next = s->next;

		for (unsigned g = 0; g < s->ngroups; g++)
			nx_pipeline_free_stages(s->groups[g]);
		nx_opts_free(&s->opts);
		free(s->driver);
		free(s->text);
		free(s);
		s = next;
	}
}

/* The stage text names the device or export it opens (in nexus_dev_info,
 * log and error messages): replace the values of secret options in it
 * with NX_SECRET_SHOWN.  Options are in text order. */
static int hide_secrets(struct nx_stage *st)
{
	size_t n = strlen(st->text), len = 0, from = 0;
	char *t = NULL;

	for (unsigned i = 0; i < st->opts.n; i++) {
		const struct nx_opt_kv *kv = &st->opts.kv[i];

		if (!nx_option_secret(st->opts.desc, kv->key))
			continue;
		if (!t && !(t = malloc(n + 1 + st->opts.n *
					       sizeof(NX_SECRET_SHOWN))))
			return nexus_error(-ENOMEM, "out of memory");
		memcpy(t + len, st->text + from, kv->vstart - from);
		len += kv->vstart - from;
		memcpy(t + len, NX_SECRET_SHOWN, sizeof(NX_SECRET_SHOWN) - 1);
		len += sizeof(NX_SECRET_SHOWN) - 1;
		from = kv->vend;
	}
	if (!t)
		return 0;
	memcpy(t + len, st->text + from, n - from + 1);
	free(st->text);
	st->text = t;
	return 0;
}

static void where(const struct nx_stage *st, char *buf, size_t len)
{
	snprintf(buf, len, "pipeline: stage '%s' at column %u",
		 st->driver ? st->driver : "(group)", st->column);
}

/* Find each stage's driver and check its options. */
static int resolve(struct nexus_ctx *ctx, struct nx_stage *head)
{
	unsigned nbelow = 0; /* devices feeding the current stage */
	char w[128];
	int rc;

	for (struct nx_stage *st = head; st; st = st->next) {
		bool first = st == head, last = !st->next;

		if (!st->driver) { /* group */
			for (unsigned g = 0; g < st->ngroups; g++) {
				rc = resolve(ctx, st->groups[g]);
				if (rc)
					return rc;
			}
			if (last)
				return nexus_error(-EINVAL, "pipeline: the group "
						   "at column %u must feed a "
						   "transform such as mirror",
						   st->column);
			nbelow = st->ngroups;
			continue;
		}
		where(st, w, sizeof(w));
		if (first) {
			st->drv = nx_registry_lookup(ctx, st->driver,
						     NEXUS_DRIVER_SOURCE);
		} else {
			if (last)
				st->drv = nx_registry_lookup(ctx, st->driver,
							     NEXUS_DRIVER_EXPORT);
			if (!st->drv)
				st->drv = nx_registry_lookup(
					ctx, st->driver, NEXUS_DRIVER_TRANSFORM);
		}
		if (!st->drv) {
			const struct nexus_driver *other =
				nx_registry_find(ctx, st->driver, 0);

			if (other)
				return nexus_error(-EINVAL, "%s: '%s' cannot be "
						   "used here (a source comes "
						   "first, transforms in the "
						   "middle, an export last)",
						   w, st->driver);
			return nx_registry_unknown(ctx, st->driver, w);
		}
		/* positional value → the driver's positional option */
		for (unsigned i = 0; i < st->opts.n; i++) {
			const struct nexus_option_desc *d;

			if (st->opts.kv[i].key[0])
				continue;
			for (d = st->drv->options; d && d->name; d++)
				if (d->flags & NEXUS_OPTF_POSITIONAL)
					break;
			if (!d || !d->name)
				return nexus_error(-EINVAL, "%s: '%s' takes no "
						   "value without a key (got "
						   "'%s')", w, st->driver,
						   st->opts.kv[i].val);
			free(st->opts.kv[i].key);
			st->opts.kv[i].key = strdup(d->name);
			if (!st->opts.kv[i].key)
				return nexus_error(-ENOMEM, "out of memory");
		}
		st->opts.desc = st->drv->options;
		st->opts.stage = st->driver;
		rc = nx_opts_validate(&st->opts, w);
		if (rc == 0)
			rc = hide_secrets(st);
		if (rc)
			return rc;
		/* how many devices the stage gets, checked without opening
		 * anything (so that nexus_pipeline_check() sees it too) */
		if (st->drv->kind == NEXUS_DRIVER_TRANSFORM) {
			unsigned mn = st->drv->min_children ? st->drv->min_children : 1;
			unsigned mx = st->drv->max_children ? st->drv->max_children : 1;

			if (nbelow < mn || nbelow > mx)
				return nexus_error(-EINVAL, "%s: takes %u to %u "
						   "devices below it, got %u", w,
						   mn, mx, nbelow);
		} else if (st->drv->kind == NEXUS_DRIVER_EXPORT && nbelow != 1) {
			return nexus_error(-EINVAL, "%s: an export serves one "
					   "device; a group must feed a "
					   "transform such as mirror", w);
		}
		nbelow = 1;
	}
	return 0;
}

int nx_pipeline_parse(struct nexus_ctx *ctx, const char *text,
		      struct nx_stage **out)
{
	struct cursor c = { .s = text };
	int rc;

	*out = NULL;
	if (!text)
		return nexus_error(-EINVAL, "pipeline: NULL text");
	rc = parse_pipeline(&c, out);
	if (rc == 0) {
		skip_ws(&c);
		if (c.s[c.i] == ')')
			rc = syntax(&c, "unbalanced ')'");
		else if (c.s[c.i] == ';')
			rc = syntax(&c, "';' outside a group '( ... ; ... )'");
		else if (c.s[c.i])
			rc = syntax(&c, "unexpected character");
	}
	if (rc == 0)
		rc = resolve(ctx, *out);
	if (rc) {
		nx_pipeline_free_stages(*out);
		*out = NULL;
	}
	return rc;
}

/* Prefix the driver's message with the stage that failed. */
static int stage_error(const struct nx_stage *st, int rc)
{
	char w[128], msg[512];

	where(st, w, sizeof(w));
	snprintf(msg, sizeof(msg), "%s", nexus_last_error());
	if (!msg[0])
		snprintf(msg, sizeof(msg), "%s", strerror(-rc));
	return nexus_error(rc, "%s: %s", w, msg);
}

/* Open the device stack of a stage list (stopping before an export). */
static int build(struct nexus_ctx *ctx, struct nx_stage *head,
		 struct nexus_dev **out, struct nx_stage **export_stage)
{
	struct nexus_dev *below[NX_MAX_CHILDREN];
	unsigned nbelow = 0;
	struct nexus_dev *dev = NULL;
	int rc;

	*export_stage = NULL;
	for (struct nx_stage *st = head; st; st = st->next) {
		if (!st->driver) {
			for (unsigned g = 0; g < st->ngroups; g++) {
				struct nx_stage *ex;

				rc = build(ctx, st->groups[g], &below[nbelow], &ex);
				if (rc == 0 && ex) {
					nx_dev_destroy(below[nbelow]);
					rc = nexus_error(-EINVAL, "%s at column "
							 "%u: an export can "
							 "only end the whole "
							 "pipeline", ex->driver,
							 ex->column);
				}
				if (rc)
					goto fail;
				nbelow++;
			}
			continue;
		}
		if (st->drv->kind == NEXUS_DRIVER_EXPORT) {
			*export_stage = st;
			break;
		}
		if (st->drv->kind == NEXUS_DRIVER_TRANSFORM) {
			unsigned mn = st->drv->min_children ? st->drv->min_children : 1;
			unsigned mx = st->drv->max_children ? st->drv->max_children : 1;

			if (nbelow < mn || nbelow > mx) {
				char w[128];

				where(st, w, sizeof(w));
				rc = nexus_error(-EINVAL, "%s: takes %u to %u "
						 "devices below it, got %u", w,
						 mn, mx, nbelow);
				goto fail;
			}
		}
		rc = nx_dev_create(ctx, st->drv, st->text, below, nbelow,
				   &st->opts, &dev);
		if (rc) {
			rc = stage_error(st, rc);
			goto fail;
		}
		below[0] = dev;
		nbelow = 1;
	}
	if (nbelow != 1) {
		rc = nexus_error(-EINVAL, "pipeline: a group must feed a "
				 "transform");
		goto fail;
	}
	*out = below[0];
	return 0;
fail:
	while (nbelow)
		nx_dev_destroy(below[--nbelow]);
	return rc;
}

int nexus_dev_open(struct nexus_ctx *ctx, const char *text,
		   struct nexus_dev **out)
{
	struct nx_stage *stages, *ex;
	struct nexus_dev *dev;
	int rc;

	nx_clear_error();
	if (!ctx || !out)
		return nexus_error(-EINVAL, "nexus_dev_open: NULL argument");
	*out = NULL;
	rc = nx_pipeline_parse(ctx, text, &stages);
	if (rc)
		return rc;
	rc = build(ctx, stages, &dev, &ex);
	if (rc == 0 && ex) {
		nx_dev_destroy(dev);
		rc = nexus_error(-EINVAL, "pipeline: stage '%s' at column %u "
				 "is an export; use nexus_pipeline_open() or "
				 "nexus_export_create()", ex->driver, ex->column);
	}
	nx_pipeline_free_stages(stages);
	if (rc)
		return rc;
	nx_dev_set_top(dev);
	*out = dev;
	return 0;
}

int nexus_pipeline_open(struct nexus_ctx *ctx, const char *text,
			struct nexus_pipeline **out)
{
	struct nx_stage *stages, *ex;
	struct nexus_pipeline *pl;
	int rc;

	nx_clear_error();
	if (!ctx || !out)
		return nexus_error(-EINVAL, "nexus_pipeline_open: NULL argument");
	*out = NULL;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return nexus_error(-ENOMEM, "out of memory");
	pl->ctx = ctx;
	rc = nx_pipeline_parse(ctx, text, &stages);
	if (rc)
		goto fail;
	rc = build(ctx, stages, &pl->dev, &ex);
	if (rc == 0 && ex) {
		rc = nx_export_create(ctx, ex->drv, &ex->opts, ex->text,
				      &pl->exp);
		if (rc == 0) {
			rc = nexus_export_add_dev(pl->exp, pl->dev, NULL);
			if (rc) {
				nexus_export_destroy(pl->exp);
				pl->exp = NULL;
			}
		}
		if (rc) {
			rc = stage_error(ex, rc);
			nx_dev_destroy(pl->dev);
		}
	}
	nx_pipeline_free_stages(stages);
	if (rc)
		goto fail;
	pthread_mutex_lock(&ctx->lock);
	pl->next = ctx->pipelines;
	ctx->pipelines = pl;
	pthread_mutex_unlock(&ctx->lock);
	*out = pl;
	return 0;
fail:
	free(pl);
	return rc;
}

struct nexus_dev *nexus_pipeline_dev(struct nexus_pipeline *pl)
{
	return pl ? pl->dev : NULL;
}

struct nexus_export *nexus_pipeline_export(struct nexus_pipeline *pl)
{
	return pl ? pl->exp : NULL;
}

void nexus_pipeline_close(struct nexus_pipeline *pl)
{
	struct nexus_ctx *ctx;
	bool found = false;

	if (!pl)
		return;
	ctx = pl->ctx;
	if (nexus_reactor_current()) {
		nexus_error(-EDEADLK, "nexus_pipeline_close from a callback "
			    "would deadlock: refused");
		nexus_log(ctx, NEXUS_LOG_ERROR, "nexus_pipeline_close called "
			  "from a callback: refused");
		return;
	}
	pthread_mutex_lock(&ctx->lock);
	for (struct nexus_pipeline **p = &ctx->pipelines; *p; p = &(*p)->next) {
		if (*p == pl) {
			*p = pl->next;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	if (!found) {
		nexus_error(-EINVAL, "nexus_pipeline_close: not an open pipeline "
			    "(closed twice?)");
		nexus_log(ctx, NEXUS_LOG_ERROR, "nexus_pipeline_close: not an "
			  "open pipeline (closed twice?)");
		return;
	}
	nexus_export_destroy(pl->exp);
	nx_dev_destroy(pl->dev);
	free(pl);
}

/* ---- description for nexus_pipeline_check() ---- */

struct outbuf {
	char *buf;
	size_t len, off;
};

static void out(struct outbuf *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void out(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(o->off < o->len ? o->buf + o->off : NULL,
		      o->off < o->len ? o->len - o->off : 0, fmt, ap);
	va_end(ap);
	if (w > 0)
		o->off += (size_t)w;
}

/* A value as pipeline text: quoted when it is empty, has separators or
 * quotes, or begins or ends with white space, so that the description
 * parses back to the same values. */
static void out_value(struct outbuf *o, const char *v)
{
	size_t n = strlen(v);

	if (n && !strpbrk(v, ",|;()'\"") && !isspace((unsigned char)v[0]) &&
	    !isspace((unsigned char)v[n - 1]))
		out(o, "%s", v);
	else if (!strchr(v, '\''))
		out(o, "'%s'", v);
	else
		out(o, "\"%s\"", v); /* the grammar has no escapes */
}

static void describe(struct outbuf *o, const struct nx_stage *head,
		     unsigned indent)
{
	static const char *const kinds[] = { "?", "source", "transform",
					     "export" };

	for (const struct nx_stage *st = head; st; st = st->next) {
		if (!st->driver) {
			out(o, "%*sgroup of %u:\n", (int)indent, "", st->ngroups);
			for (unsigned g = 0; g < st->ngroups; g++) {
				out(o, "%*s- pipeline %u:\n", (int)indent + 2,
				    "", g + 1);
				describe(o, st->groups[g], indent + 4);
			}
			continue;
		}
		out(o, "%*s%s %s", (int)indent, "",
		    kinds[st->drv->kind <= 3 ? st->drv->kind : 0], st->driver);
		for (unsigned i = 0; i < st->opts.n; i++) {
			const struct nx_opt_kv *kv = &st->opts.kv[i];

			out(o, "%s%s=", i ? "," : " ", kv->key);
			out_value(o, nx_opts_shown(&st->opts, kv->key, kv->val));
		}
		out(o, "\n");
	}
}

int nexus_pipeline_check(struct nexus_ctx *ctx, const char *text, char *buf,
			 size_t len)
{
	struct outbuf o = { buf, len, 0 };
	struct nx_stage *stages;
	int rc;

	nx_clear_error();
	if (!ctx || (!buf && len))
		return nexus_error(-EINVAL, "nexus_pipeline_check: NULL "
					    "argument");
	rc = nx_pipeline_parse(ctx, text, &stages);
	if (rc)
		return rc;
	describe(&o, stages, 0);
	nx_pipeline_free_stages(stages);
	if (len && o.off >= len)
		buf[len - 1] = '\0';
	return (int)o.off;
}
