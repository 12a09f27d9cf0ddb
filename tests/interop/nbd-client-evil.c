/* SPDX-License-Identifier: MIT */
/* The nbd source against a scripted server that misbehaves on purpose,
 * and against bad URIs.  Each scenario serves one connection from a
 * thread: a normal handshake (or a broken one), then replies that break
 * the protocol in one way.  The client must turn each into an error
 * (-EIO for a dropped connection, -EPROTO/-ENOENT/... at open) and never
 * write outside the caller's buffer: every read buffer has guard bytes
 * around it and, when the reply is refused before any data, must be
 * left untouched.  Also covered: GO refused (EXPORT_NAME fallback with a
 * decoded export name), replies out of order, reads split into data and
 * hole chunks, server errors, ESHUTDOWN, block status, FUA emulated by
 * FLUSH, TRIM longer than one request, handshake timeout. */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nexus/nexus.h>
#include "../submit.h"
#include "proto/nbd.h"

#define META_ID 7
#define SIZE (64ull << 20)
#define GUARD 64

static int failures;
static struct nexus_ctx *ctx;
static char sock_path[108], uri[256];
static int lfd;

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: [%s] FAILED: %s (last error: " \
				"%s)\n", __FILE__, __LINE__, cur_name, #cond, \
				nexus_last_error());                        \
			failures++;                                         \
		}                                                           \
	} while (0)

static const char *cur_name = "";

/* ---- server side ---- */

struct srv {
	int fd;
	bool sr, meta, go_unsup, bad_magic, huge_reply, unknown, silent;
	bool bad_bs;
	uint16_t tflags;
	uint64_t size;
	const char *want_name; /* export name the client must send */
	void (*serve)(struct srv *s);
	/* what the server saw */
	char name[256];
	uint16_t cmds[64];
	uint64_t lens[64];
	unsigned ncmds;
	bool saw_disc;
};

static bool rd(int fd, void *b, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, b, n, 0);

		if (r <= 0)
			return false;
		b = (char *)b + r;
		n -= (size_t)r;
	}
	return true;
}

static void wr(int fd, const void *b, size_t n)
{
	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

		if (r <= 0)
			return;
		b = (const char *)b + r;
		n -= (size_t)r;
	}
}

static void put16(uint8_t *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }

static void opt_reply(int fd, uint32_t opt, uint32_t type, const void *d,
		      uint32_t len)
{
	uint8_t h[20];

	put64(h, NBD_REP_MAGIC);
	put32(h + 8, opt);
	put32(h + 12, type);
	put32(h + 16, len);
	wr(fd, h, 20);
	if (len)
		wr(fd, d, len);
}

/* Fixed newstyle handshake as the scenario wants it. */
static bool handshake(struct srv *s)
{
	uint8_t g[18], b[4096 + 64];

	if (s->silent) {
		sleep(3);
		return false;
	}
	put64(g, s->bad_magic ? 0x1122334455667788ull : NBD_MAGIC);
	put64(g + 8, NBD_IHAVEOPT);
	put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	wr(s->fd, g, 18);
	if (!rd(s->fd, b, 4))
		return false;
	for (;;) {
		uint8_t o[16];
		uint32_t opt, len;

		if (!rd(s->fd, o, 16))
			return false;
		opt = be32toh(*(uint32_t *)(void *)(o + 8));
		len = be32toh(*(uint32_t *)(void *)(o + 12));
		if (len > sizeof(b) || !rd(s->fd, b, len))
			return false;
		if (s->huge_reply) {
			opt_reply(s->fd, opt, NBD_REP_ACK, NULL, 0x7fffffff);
			return false;
		}
		switch (opt) {
		case NBD_OPT_STRUCTURED_REPLY:
			opt_reply(s->fd, opt, s->sr ? NBD_REP_ACK
						    : NBD_REP_ERR_UNSUP, NULL, 0);
			break;
		case NBD_OPT_SET_META_CONTEXT:
			if (s->meta) {
				uint8_t m[4 + 15];

				put32(m, META_ID);
				memcpy(m + 4, "base:allocation", 15);
				opt_reply(s->fd, opt, NBD_REP_META_CONTEXT, m,
					  sizeof(m));
				opt_reply(s->fd, opt, NBD_REP_ACK, NULL, 0);
			} else {
				opt_reply(s->fd, opt, NBD_REP_ERR_UNSUP, NULL, 0);
			}
			break;
		case NBD_OPT_GO: {
			uint8_t i[14];
			uint32_t nl = be32toh(*(uint32_t *)(void *)b);

			if (s->go_unsup) {
				opt_reply(s->fd, opt, NBD_REP_ERR_UNSUP, NULL, 0);
				break;
			}
			if (s->unknown) {
				opt_reply(s->fd, opt, NBD_REP_ERR_UNKNOWN,
					  "nope, not here", 14);
				break;
			}
			snprintf(s->name, sizeof(s->name), "%.*s",
				 (int)(nl < 200 ? nl : 200), (char *)b + 4);
			put16(i, NBD_INFO_EXPORT);
			put64(i + 2, s->size);
			put16(i + 10, s->tflags);
			opt_reply(s->fd, opt, NBD_REP_INFO, i, 12);
			put16(i, NBD_INFO_BLOCK_SIZE);
			put32(i + 2, s->bad_bs ? 3 : 1);
			put32(i + 6, 4096);
			put32(i + 10, 32 << 20);
			opt_reply(s->fd, opt, NBD_REP_INFO, i, 14);
			opt_reply(s->fd, opt, NBD_REP_ACK, NULL, 0);
			return true;
		}
		case NBD_OPT_EXPORT_NAME: {
			uint8_t e[10];

			snprintf(s->name, sizeof(s->name), "%.*s", (int)len,
				 (char *)b);
			put64(e, s->size);
			put16(e + 8, s->tflags);
			wr(s->fd, e, 10);
			return true;
		}
		default:
			opt_reply(s->fd, opt, NBD_REP_ERR_UNSUP, NULL, 0);
		}
	}
}

struct req {
	uint16_t flags, type;
	uint64_t cookie, off;
	uint32_t len;
};

static uint8_t payload[1 << 20];

static bool read_req(struct srv *s, struct req *q)
{
	uint8_t h[28];

	if (!rd(s->fd, h, 28))
		return false;
	q->flags = be16toh(*(uint16_t *)(void *)(h + 4));
	q->type = be16toh(*(uint16_t *)(void *)(h + 6));
	memcpy(&q->cookie, h + 8, 8); /* kept in wire order */
	q->off = be64toh(*(uint64_t *)(void *)(h + 16));
	q->len = be32toh(*(uint32_t *)(void *)(h + 24));
	if (s->ncmds < 64) {
		s->cmds[s->ncmds] = q->type;
		s->lens[s->ncmds++] = q->len;
	}
	if (q->type == NBD_CMD_DISC)
		s->saw_disc = true;
	if (q->type == NBD_CMD_WRITE) {
		uint32_t left = q->len;

		while (left) {
			uint32_t n = left < sizeof(payload) ? left
							    : sizeof(payload);
			if (!rd(s->fd, payload, n))
				return false;
			left -= n;
		}
	}
	return true;
}

static void simple(struct srv *s, const struct req *q, uint32_t err)
{
	uint8_t h[16];

	put32(h, NBD_SIMPLE_REPLY_MAGIC);
	put32(h + 4, err);
	memcpy(h + 8, &q->cookie, 8);
	wr(s->fd, h, 16);
}

static void chunk(struct srv *s, const struct req *q, uint16_t flags,
		  uint16_t type, const void *p, uint32_t len)
{
	uint8_t h[20];

	put32(h, NBD_STRUCTURED_REPLY_MAGIC);
	put16(h + 4, flags);
	put16(h + 6, type);
	memcpy(h + 8, &q->cookie, 8);
	put32(h + 16, len);
	wr(s->fd, h, 20);
	if (len && p)
		wr(s->fd, p, len);
}

static uint8_t pat(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9));
}

/* OFFSET_DATA of [off, off+len) with the pattern */
static void data_chunk(struct srv *s, const struct req *q, uint16_t flags,
		       uint64_t off, uint32_t len)
{
	static uint8_t b[8 + 65536];

	put64(b, off);
	for (uint32_t i = 0; i < len && i < 65536; i++)
		b[8 + i] = pat(off + i);
	chunk(s, q, flags, NBD_REPLY_TYPE_OFFSET_DATA, b, 8 + len);
}

/* A well-behaved server for everything after the scenario's trick. */
static void serve_normally(struct srv *s)
{
	struct req q;

	while (read_req(s, &q)) {
		if (q.type == NBD_CMD_DISC)
			return;
		if (q.type == NBD_CMD_READ && s->sr) {
			data_chunk(s, &q, NBD_REPLY_FLAG_DONE, q.off, q.len);
		} else if (q.type == NBD_CMD_READ) {
			simple(s, &q, 0);
			for (uint32_t i = 0; i < q.len; i++)
				payload[i] = pat(q.off + i);
			wr(s->fd, payload, q.len);
		} else {
			simple(s, &q, 0);
		}
	}
}

static void *srv_thread(void *p)
{
	struct srv *s = p;

	s->fd = accept(lfd, NULL, NULL);
	if (s->fd < 0)
		return NULL;
	if (handshake(s) && s->serve)
		s->serve(s);
	/* wait for the client to hang up, then close */
	shutdown(s->fd, SHUT_WR);
	{
		char b[256];

		while (recv(s->fd, b, sizeof(b), 0) > 0)
			;
	}
	close(s->fd);
	return NULL;
}

/* ---- client side ---- */

static void default_srv(struct srv *s)
{
	memset(s, 0, sizeof(*s));
	s->sr = true;
	s->meta = true;
	s->size = SIZE;
	s->tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		    NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		    NBD_FLAG_SEND_WRITE_ZEROES;
}

struct run {
	struct srv s;
	pthread_t th;
	struct nexus_dev *dev;
	int open_rc;
};

static void start(struct run *r, const char *name, const char *pipeline)
{
	cur_name = name;
	printf("-- %s\n", name);
	pthread_create(&r->th, NULL, srv_thread, &r->s);
	r->dev = NULL;
	r->open_rc = nexus_dev_open(ctx, pipeline ? pipeline : uri, &r->dev);
}

static void end(struct run *r)
{
	nexus_dev_close(r->dev);
	pthread_join(r->th, NULL);
}

/* A read into a guarded buffer.  Returns the result; *untouched tells
 * whether the buffer itself was left as it was. */
static ssize_t guarded_read(struct nexus_dev *dev, uint64_t off, size_t len,
			    bool *untouched, uint8_t **data)
{
	static uint8_t buf[GUARD + (1 << 20) + GUARD];
	ssize_t rc;

	memset(buf, 0xa5, GUARD + len + GUARD);
	rc = nexus_dev_pread(dev, buf + GUARD, len, off);
	for (size_t i = 0; i < GUARD; i++)
		CHECK(buf[i] == 0xa5 && buf[GUARD + len + i] == 0xa5);
	*untouched = true;
	for (size_t i = 0; i < len; i++)
		if (buf[GUARD + i] != 0xa5)
			*untouched = false;
	if (data)
		*data = buf + GUARD;
	return rc;
}

/* Scenario: the server answers the first read with @p trick, then the
 * connection must be gone. */
static void expect_dropped(const char *name, void (*serve)(struct srv *s),
			   bool untouched_expected)
{
	struct run r;
	bool untouched;
	uint8_t b[512];

	default_srv(&r.s);
	r.s.serve = serve;
	start(&r, name, NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(guarded_read(r.dev, 8192, 4096, &untouched, NULL) == -EIO);
		if (untouched_expected)
			CHECK(untouched);
		CHECK(nexus_dev_pread(r.dev, b, 512, 0) == -ENOTCONN);
	}
	end(&r);
}

static void t_bad_magic(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t h[20] = { 0xde, 0xad, 0xbe, 0xef };

		wr(s->fd, h, 20);
	}
}

static void t_unknown_cookie(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		q.cookie ^= htobe64(0x123450000ull);
		data_chunk(s, &q, NBD_REPLY_FLAG_DONE, q.off, q.len);
	}
}

static void t_data_before(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		data_chunk(s, &q, NBD_REPLY_FLAG_DONE, q.off - 512, q.len);
}

static void t_data_past(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		data_chunk(s, &q, NBD_REPLY_FLAG_DONE, q.off + 2048, q.len);
}

static void t_data_huge(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t b[8];

		put64(b, q.off);
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, b,
		      0xffffffffu);
	}
}

static void t_hole_outside(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t b[12];

		put64(b, q.off);
		put32(b + 8, q.len * 2);
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_HOLE, b,
		      12);
	}
}

static void t_overlap(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		data_chunk(s, &q, 0, q.off, q.len);
		data_chunk(s, &q, NBD_REPLY_FLAG_DONE, q.off, 512);
	}
}

static void t_huge_error(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t b[6] = { 0, 0, 0, 5, 0, 0 };

		chunk(s, &q, NBD_REPLY_FLAG_DONE, 0x8001, b, 1u << 30);
	}
}

static void t_error_offset_outside(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t b[14];

		put32(b, NBD_EIO);
		put16(b + 4, 0);
		put64(b + 6, q.off + q.len);
		chunk(s, &q, NBD_REPLY_FLAG_DONE,
		      NBD_REPLY_TYPE_ERROR_OFFSET, b, 14);
	}
}

static void t_simple_to_read(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		simple(s, &q, 0);
}

static void t_short_read(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		data_chunk(s, &q, NBD_REPLY_FLAG_DONE, q.off, q.len / 2);
}

static void t_unknown_type(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		chunk(s, &q, NBD_REPLY_FLAG_DONE, 77, NULL, 0);
}

static void t_eof_mid_data(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t b[8 + 1024];

		put64(b, q.off);
		memset(b + 8, 1, 1024);
		/* announce 4096 bytes of data, send 1024, hang up */
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
		      NULL, 8 + q.len);
		wr(s->fd, b, sizeof(b));
	}
}

/* Replies in reverse order; each read split into hole + data chunks in
 * a scrambled order. */
static void t_out_of_order(struct srv *s)
{
	struct req q[8];

	for (int i = 0; i < 8; i++)
		if (!read_req(s, &q[i]))
			return;
	for (int i = 7; i >= 0; i--) {
		uint32_t l4 = q[i].len / 4;
		uint8_t h[12];

		data_chunk(s, &q[i], 0, q[i].off + 2 * l4, 2 * l4);
		put64(h, q[i].off);
		put32(h + 8, l4);
		chunk(s, &q[i], 0, NBD_REPLY_TYPE_OFFSET_HOLE, h, 12);
		data_chunk(s, &q[i], NBD_REPLY_FLAG_DONE, q[i].off + l4, l4);
	}
	serve_normally(s);
}

struct ooo {
	atomic_int done, bad;
	uint8_t buf[8][16384];
	struct iovec iov[8];
};

static void ooo_cb(void *ud, int res)
{
	struct ooo *o = ud;

	if (res != 16384)
		atomic_fetch_add(&o->bad, 1);
	atomic_fetch_add(&o->done, 1);
}

static void scenario_out_of_order(void)
{
	static struct ooo o;
	struct run r;

	default_srv(&r.s);
	r.s.serve = t_out_of_order;
	start(&r, "out of order, chunked", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc)
		goto out;
	for (int i = 0; i < 8; i++) {
		memset(o.buf[i], 0xa5, 16384);
		o.iov[i] = (struct iovec){ o.buf[i], 16384 };
		CHECK(test_submit(r.dev, NEXUS_OP_READ, &o.iov[i], 1,
				       (uint64_t)i * 65536, 0, 0, ooo_cb,
				       &o) == 0);
	}
	for (int t = 0; t < 5000 && atomic_load(&o.done) < 8; t++)
		usleep(1000);
	CHECK(atomic_load(&o.done) == 8 && atomic_load(&o.bad) == 0);
	for (int i = 0; i < 8; i++) {
		for (int k = 0; k < 4096; k++)
			CHECK(o.buf[i][k] == 0 || (k = 4096, 0));
		for (int k = 4096; k < 16384; k++)
			if (o.buf[i][k] != pat((uint64_t)i * 65536 + k)) {
				CHECK(!"data mismatch");
				break;
			}
	}
out:
	end(&r);
}

static void t_error_chunk(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		uint8_t b[6 + 4];

		put32(b, NBD_EPERM);
		put16(b + 4, 4);
		memcpy(b + 6, "nope", 4);
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, b, 10);
	}
	serve_normally(s);
}

static void scenario_error_chunk(void)
{
	struct run r;
	bool untouched;
	uint8_t *d;

	default_srv(&r.s);
	r.s.serve = t_error_chunk;
	start(&r, "error chunk", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(guarded_read(r.dev, 0, 4096, &untouched, NULL) == -EPERM);
		/* the connection goes on */
		CHECK(guarded_read(r.dev, 4096, 4096, &untouched, &d) == 4096);
		CHECK(d[1] == pat(4097));
	}
	end(&r);
}

static void t_eshutdown(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		simple(s, &q, NBD_ESHUTDOWN);
	/* then the client must disconnect softly */
	while (read_req(s, &q) && q.type != NBD_CMD_DISC)
		simple(s, &q, NBD_ESHUTDOWN);
}

/* The first connection answers one request and then goes away; with
 * reconnect=1 the client connects again, the device goes faulted and back
 * online, and I/O works again on the new connection. */
static void t_one_then_gone(struct srv *s)
{
	struct req q;

	if (read_req(s, &q))
		simple(s, &q, 0);
	/* then hang up: the client sees the connection close */
}

static void scenario_reconnect(void)
{
	char pipeline[300];
	uint8_t b[512] = { 0 };
	struct srv again;
	pthread_t th;
	struct run r;
	int st = -1;

	default_srv(&r.s);
	r.s.serve = t_one_then_gone;
	snprintf(pipeline, sizeof(pipeline), "nbd:%s,reconnect=1", uri);
	start(&r, "reconnect", pipeline);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(nexus_dev_pwrite(r.dev, b, 512, 0, 0) == 512);
		pthread_join(r.th, NULL); /* the first server is gone */
		default_srv(&again);
		again.serve = serve_normally;
		pthread_create(&th, NULL, srv_thread, &again);
		for (int i = 0; i < 500; i++) { /* reconnect=1: within ~2 s */
			st = nexus_dev_get_state(r.dev);
			if (st == NEXUS_DEV_STATE_ONLINE &&
			    nexus_dev_pread(r.dev, b, 512, 0) == 512)
				break;
			usleep(10000);
		}
		CHECK(st == NEXUS_DEV_STATE_ONLINE);
		CHECK(nexus_dev_pread(r.dev, b, 512, 4096) == 512);
		CHECK(b[1] == pat(4097));
		nexus_dev_close(r.dev);
		pthread_join(th, NULL);
		CHECK(again.saw_disc);
	} else {
		pthread_join(r.th, NULL);
	}
}

/* Without reconnect the device stays faulted and I/O fails at once. */
static void scenario_no_reconnect(void)
{
	uint8_t b[512] = { 0 };
	struct run r;

	default_srv(&r.s);
	r.s.serve = t_one_then_gone;
	start(&r, "no reconnect", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(nexus_dev_pwrite(r.dev, b, 512, 0, 0) == 512);
		for (int i = 0; i < 500; i++) {
			if (nexus_dev_get_state(r.dev) == NEXUS_DEV_STATE_FAULTED)
				break;
			usleep(10000);
		}
		CHECK(nexus_dev_get_state(r.dev) == NEXUS_DEV_STATE_FAULTED);
		CHECK(nexus_dev_pread(r.dev, b, 512, 0) == -ENOTCONN);
	}
	end(&r);
}

static void scenario_eshutdown(void)
{
	struct run r;
	uint8_t b[512];

	default_srv(&r.s);
	r.s.serve = t_eshutdown;
	start(&r, "ESHUTDOWN", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(nexus_dev_pwrite(r.dev, b, 512, 0, 0) == -ESHUTDOWN);
		CHECK(nexus_dev_pread(r.dev, b, 512, 0) == -ENOTCONN);
	}
	end(&r);
	CHECK(r.s.saw_disc);
}

static void t_after_done(struct srv *s)
{
	struct req q;

	if (read_req(s, &q)) {
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, NULL, 0);
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, NULL, 0);
	}
}

static void scenario_after_done(void)
{
	struct run r;
	uint8_t b[512] = { 0 };

	default_srv(&r.s);
	r.s.serve = t_after_done;
	start(&r, "chunk after the final one", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(nexus_dev_pwrite(r.dev, b, 512, 0, 0) == 512);
		for (int i = 0; i < 1000; i++) { /* until the 2nd is seen */
			if (nexus_dev_pread(r.dev, b, 512, 0) == -ENOTCONN)
				break;
			usleep(1000);
		}
		CHECK(nexus_dev_pread(r.dev, b, 512, 0) == -ENOTCONN);
	}
	end(&r);
}

static void t_bs(struct srv *s)
{
	struct req q;

	while (read_req(s, &q) && q.type != NBD_CMD_DISC) {
		uint8_t b[4 + 3 * 8];

		if (q.type != NBD_CMD_BLOCK_STATUS) {
			simple(s, &q, NBD_EINVAL);
			continue;
		}
		put32(b, q.off == 0 ? META_ID : 99);
		put32(b + 4, 4096);
		put32(b + 8, NBD_STATE_HOLE | NBD_STATE_ZERO);
		put32(b + 12, 8192);
		put32(b + 16, 0);
		put32(b + 20, 1 << 20);
		put32(b + 24, NBD_STATE_ZERO);
		chunk(s, &q, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
		      b, sizeof(b));
	}
}

static void scenario_block_status(void)
{
	struct nexus_extent e[8];
	struct run r;
	int n;

	default_srv(&r.s);
	r.s.serve = t_bs;
	start(&r, "block status", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		n = nexus_dev_block_status(r.dev, 0, 65536, e, 8);
		CHECK(n == 3);
		if (n == 3) {
			CHECK(e[0].offset == 0 && e[0].length == 4096 &&
			      e[0].flags == (NEXUS_EXTENT_HOLE |
					     NEXUS_EXTENT_ZERO));
			CHECK(e[1].offset == 4096 && e[1].length == 8192 &&
			      e[1].flags == 0);
			/* clipped to what was asked */
			CHECK(e[2].offset == 12288 &&
			      e[2].length == 65536 - 12288 &&
			      e[2].flags == NEXUS_EXTENT_ZERO);
		}
		/* a context the client did not select: protocol error */
		n = nexus_dev_block_status(r.dev, 4096, 4096, e, 8);
		CHECK(n == -EIO);
	}
	end(&r);
}

static void t_record(struct srv *s)
{
	serve_normally(s);
}

static void scenario_fua_emulated(void)
{
	struct run r;
	uint8_t b[4096] = { 0 };

	default_srv(&r.s);
	r.s.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
		     NBD_FLAG_SEND_TRIM;
	r.s.size = 8ull << 30;
	r.s.serve = t_record;
	start(&r, "FUA as FLUSH, long TRIM split", NULL);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		struct nexus_dev_info in = NEXUS_DEV_INFO_INIT;

		nexus_dev_get_info(r.dev, &in);
		CHECK(!(in.ops & NEXUS_OP_BIT(NEXUS_OP_WRITE_ZEROES)));
		CHECK(nexus_dev_write_zeroes(r.dev, 0, 4096, 0) == -EOPNOTSUPP);
		CHECK(nexus_dev_pwrite(r.dev, b, 4096, 0, NEXUS_IO_FUA) == 4096);
		CHECK(nexus_dev_trim(r.dev, 0, 8ull << 30, 0) == 0);
	}
	end(&r);
	for (unsigned i = 0; i < r.s.ncmds; i++)
		printf("   cmd %u len %llu\n", r.s.cmds[i],
		       (unsigned long long)r.s.lens[i]);
	CHECK(r.s.ncmds >= 6);
	CHECK(r.s.cmds[0] == NBD_CMD_WRITE && r.s.cmds[1] == NBD_CMD_FLUSH);
	for (int i = 2; i < 6; i++)
		CHECK(r.s.cmds[i] == NBD_CMD_TRIM && r.s.lens[i] == (1u << 31));
}

static void scenario_go_fallback(void)
{
	struct run r;
	bool untouched;
	uint8_t *d;
	char p[300];

	default_srv(&r.s);
	r.s.sr = false;
	r.s.go_unsup = true;
	r.s.serve = serve_normally;
	snprintf(p, sizeof(p), "nbd+unix:///a%%20b/c%%2Cd?socket=%s",
		 sock_path);
	start(&r, "GO refused: EXPORT_NAME, simple replies", p);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(guarded_read(r.dev, 4096, 65536, &untouched, &d) == 65536);
		CHECK(d[0] == pat(4096) && d[65535] == pat(4096 + 65535));
		CHECK(nexus_dev_block_status(r.dev, 0, 4096,
					     (struct nexus_extent[1]){ { 0 } },
					     1) == 1);
	}
	end(&r);
	CHECK(strcmp(r.s.name, "a b/c,d") == 0);
}

/* nbd+unix:///?socket=%00NAME: the Linux abstract namespace */
static void scenario_abstract(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char name[64], p[200];
	int saved = lfd, afd;
	struct run r;
	bool untouched;
	uint8_t *d;

	snprintf(name, sizeof(name), "nbd-client-evil-%d", (int)getpid());
	memcpy(a.sun_path + 1, name, strlen(name));
	afd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (afd < 0 || bind(afd, (struct sockaddr *)&a,
			    (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
					1 + strlen(name))) ||
	    listen(afd, 1)) {
		CHECK(!"abstract socket");
		return;
	}
	lfd = afd;
	default_srv(&r.s);
	r.s.serve = serve_normally;
	snprintf(p, sizeof(p), "nbd+unix:///?socket=%%00%s", name);
	start(&r, "abstract socket", p);
	CHECK(r.open_rc == 0);
	if (r.open_rc == 0) {
		CHECK(guarded_read(r.dev, 512, 4096, &untouched, &d) == 4096);
		CHECK(d[0] == pat(512));
	}
	end(&r);
	lfd = saved;
	close(afd);
}

static void scenario_open_fails(const char *name, struct srv *tmpl,
				const char *pipeline, int want,
				const char *msg)
{
	struct run r;

	r.s = *tmpl;
	start(&r, name, pipeline);
	CHECK(r.open_rc == want);
	CHECK(r.dev == NULL);
	if (msg)
		CHECK(strstr(nexus_last_error(), msg) != NULL);
	printf("   %d: %s\n", r.open_rc, nexus_last_error());
	pthread_join(r.th, NULL);
}

static void uri_errors(void)
{
	static const struct {
		const char *uri;
		int err;
		const char *msg;
	} bad[] = {
		{ "nbd://", -EINVAL, "no host" },
		{ "nbd://h:99999/", -EINVAL, "out of range" },
		{ "nbd://h:0/", -EINVAL, "out of range" },
		{ "nbd://h:12ab/", -EINVAL, "not a number" },
		{ "nbd://user@h/", -EINVAL, "user name" },
		{ "nbd+unix:///x", -EINVAL, "socket=PATH" },
		{ "nbd+unix://h/x?socket=/s", -EINVAL, "name no host" },
		{ "nbd://h/x?socket=/s", -EINVAL, "only for nbd+unix" },
		{ "nbd+unix:///?socket=/a&socket=/b", -EINVAL, "twice" },
		{ "nbd://h/a b", -EINVAL, "column 10" },
		{ "nbd://h/a<b", -EINVAL, "not allowed" },
		{ "nbd://h/%zz", -EINVAL, "percent-encoding" },
		{ "nbd://h/%4", -EINVAL, "percent-encoding" },
		{ "nbd://h/x%00y", -EINVAL, "NUL" },
		{ "nbd://h/x#frag", -EINVAL, "fragment" },
		{ "nbd://h/x?foo=1", -EINVAL, "unknown URI query parameter" },
		{ "nbd://h/x?&", -EINVAL, "empty query" },
		{ "nbd://h/x?tls-certificates=/a", -EPROTONOSUPPORT, "TLS" },
		{ "nbd:nbds://h/x", -EPROTONOSUPPORT, "TLS" },
		{ "nbd:http://h/x", -EINVAL, "unsupported scheme" },
		{ "nbd:h/x", -EINVAL, "not an NBD URI" },
		{ "nbd://[::1/x", -EINVAL, "without ']'" },
		{ "nbd://[zz]/x", -EINVAL, "not an IPv6 address" },
		{ "nbd://[::1]x/", -EINVAL, "after ']'" },
		{ "nbd://h/x?connections=abc", -EINVAL, "not a number" },
		{ "nbd://h/x?connections=1000", -EINVAL, "above" },
		{ "nbd:'nbd://h/x?timeout=3',timeout=2", -EINVAL, "both" },
		{ "nbd://127.0.0.1:1/", -ECONNREFUSED, "127.0.0.1:1" },
		{ "nbd+unix:///?socket=/nonexistent/s", -ENOENT, "/nonexistent" },
	};
	static char longname[6000];

	cur_name = "bad URIs";
	printf("-- %s\n", cur_name);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct nexus_dev *dev = NULL;
		int rc = nexus_dev_open(ctx, bad[i].uri, &dev);

		printf("   %-40s -> %d: %s\n", bad[i].uri, rc,
		       nexus_last_error());
		CHECK(rc == bad[i].err);
		CHECK(strstr(nexus_last_error(), bad[i].msg) != NULL);
		CHECK(dev == NULL);
		nexus_dev_close(dev);
	}
	memcpy(longname, "nbd://h/", 8);
	memset(longname + 8, 'a', 5000);
	{
		struct nexus_dev *dev = NULL;

		CHECK(nexus_dev_open(ctx, longname, &dev) == -ENAMETOOLONG);
	}
}

int main(void)
{
	struct nexus_ctx_opts o = NEXUS_CTX_OPTS_INIT;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/nbd-evil.XXXXXX";
	struct srv t;

	alarm(120);
	if (!mkdtemp(dir))
		return 99;
	snprintf(sock_path, sizeof(sock_path), "%s/s", dir);
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock_path);
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    listen(lfd, 8))
		return 99;
	o.reactors = 2;
	if (nexus_ctx_create(&o, &ctx))
		return 99;

	uri_errors();
	expect_dropped("bad reply magic", t_bad_magic, true);
	expect_dropped("unknown cookie", t_unknown_cookie, true);
	expect_dropped("data before the request", t_data_before, true);
	expect_dropped("data past the request", t_data_past, true);
	expect_dropped("data chunk of 4 GiB", t_data_huge, true);
	expect_dropped("hole outside the request", t_hole_outside, true);
	expect_dropped("overlapping chunks", t_overlap, false);
	expect_dropped("error chunk of 1 GiB", t_huge_error, true);
	expect_dropped("ERROR_OFFSET outside", t_error_offset_outside, true);
	expect_dropped("simple reply to a structured read", t_simple_to_read,
		       true);
	expect_dropped("unknown chunk type", t_unknown_type, true);
	expect_dropped("hang-up in the middle of data", t_eof_mid_data, false);
	{
		struct run r;
		bool untouched;

		/* a short read is an error, but the stream stays in sync */
		default_srv(&r.s);
		r.s.serve = t_short_read;
		start(&r, "read reply shorter than the read", NULL);
		CHECK(r.open_rc == 0);
		if (r.open_rc == 0)
			CHECK(guarded_read(r.dev, 0, 4096, &untouched, NULL) ==
			      -EIO);
		end(&r);
	}
	scenario_out_of_order();
	scenario_error_chunk();
	scenario_eshutdown();
	scenario_after_done();
	scenario_block_status();
	scenario_fua_emulated();
	scenario_go_fallback();
	scenario_abstract();
	scenario_reconnect();
	scenario_no_reconnect();

	default_srv(&t);
	t.bad_magic = true;
	scenario_open_fails("bad greeting magic", &t, NULL, -EPROTO,
			    "not an NBD server");
	default_srv(&t);
	t.huge_reply = true;
	scenario_open_fails("option reply of 2 GiB", &t, NULL, -EPROTO,
			    "option reply of");
	default_srv(&t);
	t.unknown = true;
	scenario_open_fails("unknown export", &t, NULL, -ENOENT,
			    "nope, not here");
	default_srv(&t);
	t.bad_bs = true;
	scenario_open_fails("minimum block size 3", &t, NULL, -EPROTO,
			    "minimum block size 3");
	{
		char p[300];
		struct timespec a, b;

		snprintf(p, sizeof(p), "nbd:'%s',timeout=1", uri);
		default_srv(&t);
		t.silent = true;
		clock_gettime(CLOCK_MONOTONIC, &a);
		scenario_open_fails("silent server", &t, p, -ETIMEDOUT,
				    "timed out");
		clock_gettime(CLOCK_MONOTONIC, &b);
		CHECK(b.tv_sec - a.tv_sec < 5);
	}

	nexus_ctx_destroy(ctx);
	close(lfd);
	unlink(sock_path);
	rmdir(dir);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
