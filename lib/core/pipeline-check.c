/* SPDX-License-Identifier: MIT */
/* nexus_pipeline_check(): a pipeline parsed and resolved, described one
 * stage a line, without opening anything.  Values that may not be shown
 * (redact.c) are printed as ***. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "pipeline.h"

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
