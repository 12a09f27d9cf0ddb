/* SPDX-License-Identifier: MIT */
/* Groups of connections (an export's): per-reactor lists kept on each
 * reactor without locks, a count and a closed flag under the group's
 * lock, a walk over every member on its reactor, and a wait for the
 * count to reach zero with a deadline. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "conn-int.h"

/* ---- group lists (reactor-local) ---- */

void nx_conn_group_unlist(struct nexus_conn *c)
{
	struct nexus_conn **head;

	if (!c->listed)
		return;
	head = &c->g->heads[nexus_reactor_index(c->r)];
	if (c->gprev)
		c->gprev->gnext = c->gnext;
	else
		*head = c->gnext;
	if (c->gnext)
		c->gnext->gprev = c->gprev;
	c->gprev = c->gnext = NULL;
	c->listed = false;
}

void nx_conn_group_list(struct nexus_conn *c)
{
	struct nexus_conn **head = &c->g->heads[nexus_reactor_index(c->r)];

	c->gprev = NULL;
	c->gnext = *head;
	if (*head)
		(*head)->gprev = c;
	*head = c;
	c->listed = true;
}

void nx_conn_group_leave(struct nexus_conn_group *g)
{
	pthread_mutex_lock(&g->lock);
	g->n--;
	if (!g->n)
		pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* ---- groups ---- */

int nexus_conn_group_create(struct nexus_ctx *ctx,
			    struct nexus_conn_group **out)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(ctx);
	struct nexus_conn_group *g;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g || !(g->heads = calloc(n ? n : 1, sizeof(*g->heads)))) {
		free(g);
		return nexus_error(-ENOMEM, "out of memory");
	}
	g->ctx = ctx;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	*out = g;
	return 0;
}

void nexus_conn_group_destroy(struct nexus_conn_group *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	free(g->heads);
	free(g);
}

int nexus_conn_group_move(struct nexus_conn *c, struct nexus_conn_group *g)
{
	pthread_mutex_lock(&g->lock);
	if (g->closed) {
		pthread_mutex_unlock(&g->lock);
		return -ESHUTDOWN;
	}
	g->n++;
	pthread_mutex_unlock(&g->lock);
	nx_conn_group_unlist(c);
	nx_conn_group_leave(c->g);
	c->g = g;
	nx_conn_group_list(c);
	return 0;
}

unsigned nexus_conn_group_count(struct nexus_conn_group *g)
{
	unsigned n;

	pthread_mutex_lock(&g->lock);
	n = g->n;
	pthread_mutex_unlock(&g->lock);
	return n;
}

void nexus_conn_group_close(struct nexus_conn_group *g)
{
	pthread_mutex_lock(&g->lock);
	g->closed = true;
	pthread_mutex_unlock(&g->lock);
}

struct foreach_arg {
	struct nexus_conn_group *g;
	unsigned ridx;
	void (*fn)(struct nexus_conn *c, void *arg);
	void *arg;
};

static int foreach_fn(void *p)
{
	struct foreach_arg *a = p;
	struct nexus_conn *c = a->g->heads[a->ridx], *next;

	/* hold the next one: fn may free the current one */
	if (c)
		c->depth++;
	for (; c; c = next) {
		next = c->gnext;
		if (next)
			next->depth++;
		a->fn(c, a->arg);
		leave(c);
	}
	return 0;
}

int nexus_conn_group_foreach(struct nexus_conn_group *g,
			     void (*fn)(struct nexus_conn *c, void *arg),
			     void *arg)
{
	unsigned n = (unsigned)nexus_ctx_reactor_count(g->ctx);

	for (unsigned i = 0; i < n; i++) {
		struct foreach_arg a = { g, i, fn, arg };
		int rc = nexus_reactor_call(nexus_ctx_reactor(g->ctx, i),
					    foreach_fn, &a);

		if (rc < 0)
			return rc;
	}
	return 0;
}

int nexus_conn_group_wait(struct nexus_conn_group *g, uint64_t ms)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)(ms / 1000);
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&g->lock);
	while (g->n && !rc) {
		if (!ms)
			pthread_cond_wait(&g->cond, &g->lock);
		else if (pthread_cond_timedwait(&g->cond, &g->lock, &dl) ==
			 ETIMEDOUT)
			rc = g->n ? -ETIMEDOUT : 0;
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}
