/* SPDX-License-Identifier: MIT */
/* NBD export: the handshake on a connection.  The greeting goes out at
 * accept; client bytes feed the pure state machine of nbd-proto.c
 * (under the listener's lock, which guards the catalogue of exports
 * sharing the address); its replies are sent before more is fed.  On
 * NBD_OPT_GO the connection joins the chosen device's group, in the
 * same locked section, so that a device being removed either sees it
 * or is never chosen. */
#include "config.h"
#include <stdlib.h>
#include <string.h>

#include "nbd-int.h"

static bool cat_find(void *ud, const char *name, size_t len,
		     struct nbds_export *out)
{
	struct nbd_server *srv = ud;

	for (unsigned i = 0; i < srv->n; i++)
		for (struct nbd_dev *d = srv->exps[i]->devs; d; d = d->next)
			if (strlen(d->name) == len &&
			    !memcmp(d->name, name, len)) {
				*out = d->desc;
				return true;
			}
	return false;
}

static bool cat_get(void *ud, unsigned i, struct nbds_export *out)
{
	struct nbd_server *srv = ud;

	for (unsigned k = 0; k < srv->n; k++)
		for (struct nbd_dev *d = srv->exps[k]->devs; d; d = d->next, i--)
			if (!i) {
				*out = d->desc;
				return true;
			}
	return false;
}

static void hs_sent(void *arg, int res)
{
	struct nbd_tx *t = arg;

	t->hs_sending = false;
	nx_out_reset(&t->hout);
	if (res < 0 || nexus_conn_closing(t->c))
		return;
	if (t->hs_next == NBDS_HS_MORE) {
		nexus_conn_recv_pause(t->c, false);
		return;
	}
	if (t->hs_next == NBDS_HS_CLOSE) {
		nexus_conn_close(t->c, t->hs->why);
		return;
	}
	/* NBDS_HS_GO: the reply is out; serve the chosen device */
	nbd_tx_start(t, t->hs->chosen.opaque, t->hs);
	free(t->hs);
	t->hs = NULL;
	nx_out_free(&t->hout);
}

static void hs_send(struct nbd_tx *t)
{
	struct iovec v = { t->hout.data, t->hout.len };

	t->hs_sending = true;
	nexus_conn_recv_pause(t->c, true);
	if (nexus_conn_send(t->c, &v, 1, hs_sent, t) < 0) {
		t->hs_sending = false;
		nexus_conn_close(t->c, "cannot send");
	}
}

void nbd_hs_recv(struct nbd_tx *t)
{
	struct nbds_catalog cat = { cat_find, cat_get, t->srv };
	const uint8_t *in;
	size_t len, used = 0;
	int rc;

	if (t->hs_sending)
		return;
	in = nexus_conn_rdata(t->c, &len);
	nexus_listener_lock(t->lst);
	rc = nbds_hs_feed(t->hs, &cat, in, len, &used, &t->hout);
	if (rc == NBDS_HS_GO) {
		struct nbd_dev *d = t->hs->chosen.opaque;

		if (nexus_conn_group_move(t->c, d->g) < 0) {
			rc = NBDS_HS_CLOSE;
			t->hs->why = "export is being removed";
		}
	}
	nexus_listener_unlock(t->lst);
	nexus_conn_consume(t->c, used);
	t->hs_next = rc;
	if (t->hout.failed) {
		nexus_conn_close(t->c, "out of memory");
		return;
	}
	if (t->hout.len) {
		hs_send(t);
		return;
	}
	if (rc == NBDS_HS_CLOSE)
		nexus_conn_close(t->c, t->hs->why);
	else if (rc == NBDS_HS_GO)
		hs_sent(t, 0);
}

void nbd_accept(struct nexus_conn *c, void *ud)
{
	struct nbd_server *srv = ud;
	uint8_t greeting[NBDS_GREETING_LEN];
	struct nbd_export *ex;
	struct nbd_tx *t;
	uint64_t tmo = 0;
	unsigned maxinf = 1;

	t = calloc(1, sizeof(*t));
	if (!t || !(t->hs = malloc(sizeof(*t->hs)))) {
		free(t);
		nexus_conn_close(c, "out of memory");
		return;
	}
	t->c = c;
	t->lst = nexus_conn_listener(c);
	t->srv = srv;
	nbds_hs_init(t->hs);
	t->hs_next = NBDS_HS_MORE;
	/* the strictest handshake timeout and the largest queue of the
	 * exports on this address */
	nexus_listener_lock(t->lst);
	for (unsigned i = 0; i < srv->n; i++) {
		ex = srv->exps[i];
		if (ex->hs_timeout_ms && (!tmo || ex->hs_timeout_ms < tmo))
			tmo = ex->hs_timeout_ms;
		if (ex->max_inflight > maxinf)
			maxinf = ex->max_inflight;
	}
	nexus_listener_unlock(t->lst);
	/* two entries per reply (header, data) */
	t->send_slots = maxinf;
	if (nexus_conn_setup(c, &nbd_conn_ops, t, 2 * maxinf + 8) < 0) {
		free(t->hs);
		free(t);
		nexus_conn_close(c, "out of memory");
		return;
	}
	if (tmo)
		nexus_conn_timer(c, tmo, 0);
	nbds_greeting(greeting);
	nx_out_put(&t->hout, greeting, sizeof(greeting));
	if (t->hout.failed) {
		nexus_conn_close(c, "out of memory");
		return;
	}
	hs_send(t);
}
