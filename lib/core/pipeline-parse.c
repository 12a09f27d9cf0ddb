/* SPDX-License-Identifier: MIT */
/* The grammar of the pipeline language (see doc/nexus-pipeline.7):
 *
 *   pipeline := element ( '|' stage )*
 *   element  := stage | '(' pipeline ( ';' pipeline )* ')'
 *   stage    := NAME [ ':' arg ( ',' arg )* ] | SCHEME '://' REST
 *   arg      := KEY '=' VALUE | VALUE          (a VALUE alone: positional)
 *   VALUE    := text without , | ; ( ) or a '...' / "..." quoted string
 *
 * Text in, a list of stages out: syntax only, no driver is looked up
 * (pipeline-resolve.c does that).  Errors name the column and the stage.
 * The depth of the device stack is limited here, while parsing, so that
 * a pipeline of thousands of stages is refused before anything is
 * built. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pipeline.h"

struct cursor {
	const char *s;
	size_t i;
	unsigned stage_no;
	unsigned nesting; /* groups open around the cursor */
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

static int syntax_err(const struct cursor *c, int err, const char *what)
{
	return nexus_error(err, "pipeline: column %u (stage %u): %s", col(c),
			   c->stage_no, what);
}

static int syntax(const struct cursor *c, const char *what)
{
	return syntax_err(c, -EINVAL, what);
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

static int parse_pipeline(struct cursor *c, struct nx_stage **out,
			  unsigned *depth);

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

/* '(' pipeline ( ';' pipeline )* ')': its depth is its deepest one's. */
static int parse_group(struct cursor *c, struct nx_stage *st, unsigned *depth)
{
	int rc;

	if (++c->nesting > NX_MAX_GROUP_NESTING)
		return syntax(c, "groups nested too deeply");
	c->i++;
	*depth = 0;
	for (;;) {
		unsigned d;

		if (st->ngroups == NX_MAX_CHILDREN)
			return syntax(c, "too many pipelines in a group");
		rc = parse_pipeline(c, &st->groups[st->ngroups], &d);
		if (st->groups[st->ngroups])
			st->ngroups++;
		if (rc)
			return rc;
		if (d > *depth)
			*depth = d;
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
	c->nesting--;
	return 0;
}

/* One stage (or, first in a pipeline, a group); *depth is what it adds
 * to the stack: 1, or a group's depth. */
static int parse_stage(struct cursor *c, struct nx_stage **out, bool first,
		       unsigned *depth)
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
	*depth = 1;
	start = c->i;
	if (c->s[c->i] == '(') {
		if (!first)
			return syntax(c, "a group '( ... ; ... )' may only start "
					 "a pipeline");
		rc = parse_group(c, st, depth);
		if (rc)
			return rc;
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

static int parse_pipeline(struct cursor *c, struct nx_stage **out,
			  unsigned *depth)
{
	struct nx_stage **tail = out;
	int rc;

	*out = NULL;
	*depth = 0;
	for (bool first = true;; first = false) {
		size_t at;
		unsigned d;

		skip_ws(c);
		at = c->i;
		rc = parse_stage(c, tail, first, &d);
		if (rc)
			return rc;
		*depth += d;
		if (*depth > NX_MAX_DEPTH) {
			c->i = at;
			return syntax_err(c, -E2BIG, "the device stack is more "
					  "than 64 stages deep (at most 64 "
					  "from a source to the end: "
					  "nexus-pipeline(7), DEPTH)");
		}
		tail = &(*tail)->next;
		skip_ws(c);
		if (c->s[c->i] != '|')
			return 0;
		c->i++;
	}
}

/* After the text parsed: nothing may follow. */
static int end_of_text(struct cursor *c)
{
	skip_ws(c);
	if (c->s[c->i] == ')')
		return syntax(c, "unbalanced ')'");
	if (c->s[c->i] == ';')
		return syntax(c, "';' outside a group '( ... ; ... )'");
	if (c->s[c->i] == '|')
		return syntax(c, "a single stage was expected: '|' is not "
				 "allowed here");
	if (c->s[c->i])
		return syntax(c, "unexpected character");
	return 0;
}

/* Parse @p text as a whole pipeline or as one stage alone. */
static int parse_text(const char *text, bool one_stage, struct nx_stage **out)
{
	struct cursor c = { .s = text };
	unsigned depth;
	int rc;

	*out = NULL;
	if (!text)
		return nexus_error(-EINVAL, "pipeline: NULL text");
	skip_ws(&c);
	if (one_stage && c.s[c.i] == '(')
		return syntax(&c, "a single stage was expected, not a group");
	rc = one_stage ? parse_stage(&c, out, false, &depth)
		       : parse_pipeline(&c, out, &depth);
	if (rc == 0)
		rc = end_of_text(&c);
	if (rc) {
		nx_pipeline_free_stages(*out);
		*out = NULL;
	}
	return rc;
}

int nx_grammar_pipeline(const char *text, struct nx_stage **out)
{
	return parse_text(text, false, out);
}

int nx_grammar_stage(const char *text, struct nx_stage **out)
{
	return parse_text(text, true, out);
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
