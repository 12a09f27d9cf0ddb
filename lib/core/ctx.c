/* SPDX-License-Identifier: MIT */
/* Contexts: reactor threads, driver registry, logging, and the lists of
 * what is open so that nexus_ctx_destroy() can close it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "store.h"

/* Read the caller's options: only the fields its size covers. */
static int copy_opts(const struct nexus_ctx_opts *in, struct nexus_ctx_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = sizeof(*o);
	if (!in)
		return 0;
	if (in->size < sizeof(size_t) || in->size > 65536)
		return nexus_error(-EINVAL, "nexus_ctx_opts.size is %zu: "
				   "initialise with NEXUS_CTX_OPTS_INIT",
				   in->size);
	memcpy((char *)o + sizeof(size_t), (const char *)in + sizeof(size_t),
	       (in->size < sizeof(*o) ? in->size : sizeof(*o)) - sizeof(size_t));
	o->size = sizeof(*o);
	return 0;
}

/* nexus_ctx_create() fails with @p rc: event_free still runs once. */
static int no_ctx(const struct nexus_ctx_opts *o, int rc)
{
	if (o->event_free)
		o->event_free(o->event_user_data);
	return rc;
}

int nexus_ctx_create(const struct nexus_ctx_opts *in, struct nexus_ctx **out)
{
	struct nexus_ctx_opts o;
	struct nexus_ctx *ctx;
	long ncpu;
	int rc;

	nx_clear_error();
	if (!out)
		return nexus_error(-EINVAL, "nexus_ctx_create: NULL out");
	*out = NULL;
	rc = copy_opts(in, &o);
	if (rc)
		return rc;
	/* from here on, a failure runs event_free (as documented) */
	if (o.reactors > 1024)
		return no_ctx(&o, nexus_error(-EINVAL, "reactors=%u is more "
					      "than 1024", o.reactors));
	if (o.ring_entries > 32768)
		return no_ctx(&o, nexus_error(-EINVAL, "ring_entries=%u is "
					      "more than 32768",
					      o.ring_entries));
	if (o.mem_budget && o.mem_budget < (32u << 20))
		return no_ctx(&o, nexus_error(-EINVAL, "mem_budget=%llu is less "
					      "than 32 MiB, the largest request",
					      (unsigned long long)o.mem_budget));
	if (o.poll_us > 100000)
		return no_ctx(&o, nexus_error(-EINVAL, "poll_us=%u is more "
					      "than 100000", o.poll_us));
	if (o.log_level < 0 || o.log_level > NEXUS_LOG_DEBUG)
		return no_ctx(&o, nexus_error(-EINVAL, "log_level=%d is not a "
					      "nexus_log_level", o.log_level));
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return no_ctx(&o, nexus_error(-ENOMEM, "out of memory"));
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ctx->nreactors = o.reactors ? o.reactors : (ncpu > 0 ? (unsigned)ncpu : 1);
	ctx->max_spinners = ncpu > 3 ? (unsigned)ncpu / 2 : 1;
	ctx->mem_budget = o.mem_budget ? o.mem_budget : 1ull << 30;
	ctx->log_fn = o.log_fn ? o.log_fn : nx_log_default;
	ctx->log_ud = o.log_user_data;
	/* NEXUS_LOG_ERROR is 0: with a callback, 0 means errors only, as
	 * documented; only the default stderr logger turns 0 into WARN. */
	ctx->log_level = o.log_fn || o.log_level ? o.log_level : NEXUS_LOG_WARN;
	ctx->flags = o.flags;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->secret_lock, NULL);
	if (o.plugin_path && !(ctx->plugin_path = strdup(o.plugin_path))) {
		rc = nexus_error(-ENOMEM, "out of memory");
		goto fail;
	}
	rc = nx_registry_init(ctx);
	if (rc)
		goto fail;
	rc = nx_events_start(ctx, &o, &ctx->events);
	if (rc)
		goto fail;
	ctx->reactors = calloc(ctx->nreactors, sizeof(*ctx->reactors));
	if (!ctx->reactors) {
		rc = nexus_error(-ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < ctx->nreactors; i++) {
		rc = nx_reactor_start(&ctx->reactors[i], ctx, i, &o);
		if (rc) {
			while (i--)
				nx_reactor_stop(&ctx->reactors[i]);
			goto fail;
		}
	}
	*out = ctx;
	return 0;
fail:
	free(ctx->reactors);
	if (ctx->events)
		nx_events_stop(ctx->events); /* runs event_free */
	else
		no_ctx(&o, 0);
	nx_registry_fini(ctx);
	free(ctx->plugin_path);
	pthread_mutex_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->secret_lock);
	free(ctx);
	return rc;
}

void nexus_ctx_destroy(struct nexus_ctx *ctx)
{
	if (!ctx)
		return;
	if (nexus_reactor_current()) {
		nexus_error(-EDEADLK, "nexus_ctx_destroy from a callback would "
			    "deadlock: refused");
		nexus_log(ctx, NEXUS_LOG_ERROR,
			  "nexus_ctx_destroy called from a callback: refused");
		return;
	}
	if (nx_event_on_thread(ctx->events)) {
		nexus_error(-EDEADLK, "nexus_ctx_destroy called from the "
			    "context's own event callback: refused (it waits "
			    "for that callback to return)");
		nexus_log(ctx, NEXUS_LOG_ERROR, "%s", nexus_last_error());
		return;
	}
	for (;;) {
		struct nexus_pipeline *pl;

		pthread_mutex_lock(&ctx->lock);
		pl = ctx->pipelines;
		pthread_mutex_unlock(&ctx->lock);
		if (!pl)
			break;
		nexus_log(ctx, NEXUS_LOG_WARN, "nexus_ctx_destroy: closing a "
			  "pipeline still open");
		nexus_pipeline_close(pl);
	}
	for (;;) {
		struct nexus_export *exp;

		pthread_mutex_lock(&ctx->lock);
		exp = ctx->exports;
		pthread_mutex_unlock(&ctx->lock);
		if (!exp)
			break;
		nexus_log(ctx, NEXUS_LOG_WARN, "nexus_ctx_destroy: stopping "
			  "export '%s' still running", exp->spec);
		nexus_export_destroy(exp);
	}
	for (;;) {
		struct nexus_dev *dev;

		pthread_mutex_lock(&ctx->lock);
		dev = ctx->devs;
		pthread_mutex_unlock(&ctx->lock);
		if (!dev)
			break;
		nexus_log(ctx, NEXUS_LOG_WARN, "nexus_ctx_destroy: closing "
			  "device '%s' still open", dev->name);
		nexus_dev_close(dev);
	}
	for (unsigned i = 0; i < ctx->nreactors; i++)
		nx_reactor_stop(&ctx->reactors[i]);
	free(ctx->reactors);
	/* the last events delivered, then event_free, once */
	nx_events_stop(ctx->events);
	ctx->events = NULL;
	nx_secrets_forget(ctx);
	nx_store_app_fini(ctx);
	nx_registry_fini(ctx);
	free(ctx->plugin_path);
	pthread_mutex_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->secret_lock);
	free(ctx);
}

int nexus_ctx_reactor_count(const struct nexus_ctx *ctx)
{
	if (!ctx)
		return nexus_error(-EINVAL, "NULL context");
	return (int)ctx->nreactors;
}
