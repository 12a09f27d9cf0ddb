/* SPDX-License-Identifier: MIT */
/* Exports: an export driver serving a list of devices.  The export holds
 * a reference on each device it serves (nexus_dev_close() refuses while
 * it does); devices are added and removed while it runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ctx-list.h"
#include "event.h"

static void export_free(struct nexus_export *exp)
{
	nx_event_forget(exp->ctx, exp);
	nx_opts_free(&exp->opts);
	pthread_mutex_destroy(&exp->lock);
	pthread_mutex_destroy(&exp->add_lock);
	free(exp->spec);
	free(exp);
}

int nx_export_create(struct nexus_ctx *ctx, const struct nexus_driver *drv,
		     const struct nexus_opts *opts, const char *spec,
		     struct nexus_export **out)
{
	struct nexus_export *exp;
	int rc;

	exp = calloc(1, sizeof(*exp));
	if (!exp || !(exp->spec = strdup(spec ? spec : drv->name))) {
		free(exp);
		return nexus_error(-ENOMEM, "out of memory");
	}
	pthread_mutex_init(&exp->lock, NULL);
	pthread_mutex_init(&exp->add_lock, NULL);
	if (nx_opts_copy(&exp->opts, opts)) {
		export_free(exp);
		return nexus_error(-ENOMEM, "out of memory");
	}
	exp->opts.stage = exp->spec;
	exp->ctx = ctx;
	exp->drv = drv;
	rc = drv->export_start(exp, &exp->opts);
	if (rc) {
		if (rc > 0)
			rc = -EIO;
		export_free(exp);
		return rc;
	}
	pthread_mutex_lock(&ctx->lock);
	exp->next = ctx->exports;
	ctx->exports = exp;
	pthread_mutex_unlock(&ctx->lock);
	nexus_log(ctx, NEXUS_LOG_INFO, "export %s started", exp->spec);
	*out = exp;
	return 0;
}

int nexus_export_create(struct nexus_ctx *ctx, const char *spec,
			struct nexus_export **out)
{
	struct nx_stage *st;
	int rc;

	nx_clear_error();
	if (out)
		*out = NULL;
	if (!ctx || !spec || !out)
		return nexus_error(-EINVAL, "nexus_export_create: NULL argument");
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "nexus_export_create from a "
				   "callback would deadlock");
	rc = nx_stage_parse(ctx, spec, NEXUS_DRIVER_EXPORT, &st);
	if (rc)
		return rc;
	rc = nx_export_create(ctx, st->drv, &st->opts, st->text, out);
	nx_pipeline_free_stages(st);
	return rc;
}

/* EXPORT_DEV_ADDED / EXPORT_DEV_REMOVED for an entry. */
static void dev_event(struct nexus_export_dev *ed, uint32_t kind,
		      uint32_t reason)
{
	struct nexus_event_info ev = { .size = sizeof(ev) };
	char msg[NEXUS_ID_MAX + 32];

	snprintf(msg, sizeof(msg), "name '%s', id %u",
		 ed->name ? ed->name : "", ed->id);
	ev.kind = kind;
	ev.reason = reason;
	ev.dev = ed->dev;
	ev.exp = ed->exp;
	ev.object = ed->exp->spec;
	ev.message = msg;
	nx_event_emit(ed->exp->ctx, &ev);
}

static bool id_taken(const struct nexus_export *exp, uint32_t id)
{
	for (const struct nexus_export_dev *e = exp->devs; e; e = e->next)
		if (e->id == id)
			return true;
	return false;
}

int nexus_export_add_dev(struct nexus_export *exp, struct nexus_dev *dev,
			 const struct nexus_export_dev_opts *uopts)
{
	struct nexus_export_dev_opts o = NEXUS_EXPORT_DEV_OPTS_INIT;
	struct nexus_export_dev *ed, **tail;
	int rc = 0;

	nx_clear_error();
	if (!exp || !dev)
		return nexus_error(-EINVAL, "nexus_export_add_dev: NULL "
				   "argument");
	if (uopts) {
		if (uopts->size < sizeof(size_t))
			return nexus_error(-EINVAL, "nexus_export_dev_opts.size "
					   "not set (use "
					   "NEXUS_EXPORT_DEV_OPTS_INIT)");
		memcpy(&o, uopts, uopts->size < sizeof(o) ? uopts->size
							   : sizeof(o));
		o.size = sizeof(o);
	}
	if (dev->ctx != exp->ctx)
		return nexus_error(-EINVAL, "nexus_export_add_dev: %s belongs "
				   "to another context", dev->name);
	if (o.name && strlen(o.name) >= NEXUS_ID_MAX)
		return nexus_error(-EINVAL, "nexus_export_add_dev: name of %zu "
				   "bytes is longer than %d", strlen(o.name),
				   NEXUS_ID_MAX - 1);
	if (o.flags & ~(uint32_t)NEXUS_EXPORT_DEV_READ_ONLY)
		return nexus_error(-EINVAL, "nexus_export_add_dev: unknown "
				   "flags 0x%x", o.flags);
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "nexus_export_add_dev from a "
				   "callback would deadlock");
	if (!exp->drv->export_add_dev)
		return nexus_error(-EOPNOTSUPP, "export driver '%s' cannot "
				   "serve devices", exp->drv->name);
	ed = calloc(1, sizeof(*ed));
	if (!ed || (o.name && !(ed->name = strdup(o.name)))) {
		free(ed);
		return nexus_error(-ENOMEM, "out of memory");
	}
	ed->exp = exp;
	ed->dev = dev;
	ed->flags = o.flags;
	pthread_mutex_lock(&exp->add_lock);
	if (exp->destroying) {
		rc = nexus_error(-ESHUTDOWN, "export %s is being destroyed",
				 exp->spec);
		goto out;
	}
	pthread_mutex_lock(&exp->lock);
	for (struct nexus_export_dev *e = exp->devs; e && !rc; e = e->next) {
		if (e->dev == dev)
			rc = nexus_error(-EEXIST, "export %s serves %s already",
					 exp->spec, dev->name);
		else if (o.name && e->name && !strcmp(o.name, e->name))
			rc = nexus_error(-EEXIST, "export %s serves a device "
					 "named '%s' already", exp->spec,
					 o.name);
		else if (o.id && e->id == o.id)
			rc = nexus_error(-EEXIST, "export %s serves a device "
					 "with id %u already", exp->spec, o.id);
	}
	if (!rc) {
		ed->id = o.id;
		if (!ed->id)
			for (ed->id = 1; id_taken(exp, ed->id); ed->id++)
				;
		for (tail = &exp->devs; *tail; tail = &(*tail)->next)
			;
		*tail = ed;
	}
	pthread_mutex_unlock(&exp->lock);
	if (rc)
		goto out;
	pthread_mutex_lock(&exp->ctx->lock);
	dev->export_refs++;
	pthread_mutex_unlock(&exp->ctx->lock);
	rc = exp->drv->export_add_dev(exp, ed);
	if (rc) {
		if (rc > 0)
			rc = -EIO;
		pthread_mutex_lock(&exp->lock);
		for (tail = &exp->devs; *tail != ed; tail = &(*tail)->next)
			;
		*tail = ed->next;
		pthread_mutex_unlock(&exp->lock);
		pthread_mutex_lock(&exp->ctx->lock);
		dev->export_refs--;
		pthread_mutex_unlock(&exp->ctx->lock);
		goto out;
	}
	nexus_log(exp->ctx, NEXUS_LOG_INFO, "export %s serves %s (id %u)",
		  exp->spec, dev->name, ed->id);
	dev_event(ed, NEXUS_EVENT_EXPORT_DEV_ADDED, NEXUS_REASON_USER);
	pthread_mutex_unlock(&exp->add_lock);
	return 0;
out:
	pthread_mutex_unlock(&exp->add_lock);
	free(ed->name);
	free(ed);
	return rc;
}

/* Unlink @p ed, let the driver drain it, drop the device's reference.
 * With exp->add_lock held. */
static void remove_entry(struct nexus_export *exp, struct nexus_export_dev *ed)
{
	struct nexus_export_dev **p;

	pthread_mutex_lock(&exp->lock);
	for (p = &exp->devs; *p != ed; p = &(*p)->next)
		;
	*p = ed->next;
	pthread_mutex_unlock(&exp->lock);
	exp->drv->export_remove_dev(exp, ed);
	dev_event(ed, NEXUS_EVENT_EXPORT_DEV_REMOVED,
		  exp->destroying ? NEXUS_REASON_SHUTDOWN : NEXUS_REASON_USER);
	pthread_mutex_lock(&exp->ctx->lock);
	ed->dev->export_refs--;
	pthread_mutex_unlock(&exp->ctx->lock);
	nexus_log(exp->ctx, NEXUS_LOG_INFO, "export %s no longer serves %s",
		  exp->spec, ed->dev->name);
	free(ed->name);
	free(ed);
}

int nexus_export_remove_dev(struct nexus_export *exp, struct nexus_dev *dev)
{
	struct nexus_export_dev *ed;

	nx_clear_error();
	if (!exp || !dev)
		return nexus_error(-EINVAL, "nexus_export_remove_dev: NULL "
				   "argument");
	if (nexus_reactor_current())
		return nexus_error(-EDEADLK, "nexus_export_remove_dev from a "
				   "callback would deadlock");
	pthread_mutex_lock(&exp->add_lock);
	pthread_mutex_lock(&exp->lock);
	for (ed = exp->devs; ed && ed->dev != dev; ed = ed->next)
		;
	pthread_mutex_unlock(&exp->lock);
	if (!ed) {
		pthread_mutex_unlock(&exp->add_lock);
		return nexus_error(-ENOENT, "export %s does not serve %s",
				   exp->spec, dev->name);
	}
	remove_entry(exp, ed);
	pthread_mutex_unlock(&exp->add_lock);
	return 0;
}

int nexus_export_dev_count(const struct nexus_export *exp)
{
	struct nexus_export *e = (struct nexus_export *)exp;
	int n = 0;

	if (!exp)
		return nexus_error(-EINVAL, "nexus_export_dev_count: NULL "
				   "export");
	pthread_mutex_lock(&e->lock);
	for (struct nexus_export_dev *ed = e->devs; ed; ed = ed->next)
		n++;
	pthread_mutex_unlock(&e->lock);
	return n;
}

void nexus_export_destroy(struct nexus_export *exp)
{
	struct nexus_ctx *ctx;

	if (!exp)
		return;
	ctx = exp->ctx;
	if (NX_CTX_UNLINK(ctx, &ctx->exports, exp, next,
			  "nexus_export_destroy", "destroyed twice?"))
		return;
	pthread_mutex_lock(&exp->add_lock);
	exp->destroying = true;
	/* newest first, as a stack unwinds */
	while (exp->devs) {
		struct nexus_export_dev *last = exp->devs;

		while (last->next)
			last = last->next;
		remove_entry(exp, last);
	}
	pthread_mutex_unlock(&exp->add_lock);
	exp->drv->export_stop(exp);
	nexus_log(ctx, NEXUS_LOG_INFO, "export %s stopped", exp->spec);
	export_free(exp);
}

int nexus_export_list_conns(struct nexus_export *exp,
			    struct nexus_conn_info *o, unsigned max)
{
	if (!exp || (!o && max))
		return nexus_error(-EINVAL, "nexus_export_list_conns: NULL "
				   "argument");
	if (!exp->drv->export_conns)
		return nexus_error(-EOPNOTSUPP, "export driver '%s' cannot list "
				   "connections", exp->drv->name);
	for (unsigned i = 0; i < max; i++)
		if (o[i].size < sizeof(size_t))
			return nexus_error(-EINVAL, "nexus_conn_info.size not "
					   "set (use NEXUS_CONN_INFO_INIT)");
	return exp->drv->export_conns(exp, o, max);
}

const struct nexus_opts *nx_export_opts(const struct nexus_export *exp)
{
	return &exp->opts;
}

struct nexus_export_dev *nexus_export_dev_at(const struct nexus_export *exp,
					     unsigned i)
{
	struct nexus_export *e = (struct nexus_export *)exp;
	struct nexus_export_dev *ed;

	if (!exp)
		return NULL;
	pthread_mutex_lock(&e->lock);
	for (ed = e->devs; ed && i; ed = ed->next)
		i--;
	pthread_mutex_unlock(&e->lock);
	return ed;
}

struct nexus_export_dev *nexus_export_find_dev(const struct nexus_export *exp,
					       const char *name)
{
	struct nexus_export *e = (struct nexus_export *)exp;
	struct nexus_export_dev *ed;

	if (!exp || !name)
		return NULL;
	pthread_mutex_lock(&e->lock);
	for (ed = e->devs; ed; ed = ed->next)
		if (ed->name && !strcmp(ed->name, name))
			break;
	pthread_mutex_unlock(&e->lock);
	return ed;
}

struct nexus_export_dev *
nexus_export_find_dev_id(const struct nexus_export *exp, uint32_t id)
{
	struct nexus_export *e = (struct nexus_export *)exp;
	struct nexus_export_dev *ed;

	if (!exp)
		return NULL;
	pthread_mutex_lock(&e->lock);
	for (ed = e->devs; ed && ed->id != id; ed = ed->next)
		;
	pthread_mutex_unlock(&e->lock);
	return ed;
}

struct nexus_dev *nexus_export_dev_device(const struct nexus_export_dev *ed)
{
	return ed ? ed->dev : NULL;
}

const char *nexus_export_dev_name(const struct nexus_export_dev *ed)
{
	return ed ? ed->name : NULL;
}

uint32_t nexus_export_dev_id(const struct nexus_export_dev *ed)
{
	return ed ? ed->id : 0;
}

uint32_t nexus_export_dev_flags(const struct nexus_export_dev *ed)
{
	return ed ? ed->flags : 0;
}

void *nexus_export_dev_private(const struct nexus_export_dev *ed)
{
	return ed ? ed->priv : NULL;
}

void nexus_export_dev_set_private(struct nexus_export_dev *ed, void *p)
{
	if (ed)
		ed->priv = p;
}

struct nexus_ctx *nexus_export_ctx(const struct nexus_export *exp)
{
	return exp ? exp->ctx : NULL;
}

void *nexus_export_private(const struct nexus_export *exp)
{
	return exp ? exp->priv : NULL;
}

void nexus_export_set_private(struct nexus_export *exp, void *p)
{
	if (exp)
		exp->priv = p;
}
