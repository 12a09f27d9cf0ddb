/* SPDX-License-Identifier: MIT */
/* nbd-serve: run pipelines ending in an export, for the interop tests.
 *
 *   nbd-serve [-v] [-r N] PIPELINE [-e EXPORT-SPEC]... [PIPELINE ...]
 *
 * Each PIPELINE is opened with nexus_pipeline_open(); each -e starts one
 * more export of the device of the pipeline before it with
 * nexus_export_create().  Prints "LISTEN <address>" for every listener
 * (so that port 0 can be used) and "READY" once everything runs, then
 * waits for signals:
 *   SIGTERM, SIGINT  stop everything and exit 0
 *   SIGUSR1          print one "CONN export peer requests errors
 *                    bytes_read bytes_written reactor" line per connection
 *                    and "CONNS <n>"
 *   SIGUSR2          stop the -e exports, check that the devices still work,
 *                    print "STOPPED" (or "STOP-FAILED")
 * With --stdin it also exits when standard input reaches end of file.
 * With --events it prints every context event as one line:
 *   EVENT <kind> peer=<peer> reason=<reason> error=<n> object=<object>
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nexus/nexus.h>

#define MAX_ITEMS 32

static int verbose;

static void log_cb(void *ud, int level, const char *msg)
{
	const char *p = strstr(msg, "nbd: listening on ");

	(void)ud;
	if (p) {
		printf("LISTEN %s\n", p + strlen("nbd: listening on "));
		fflush(stdout);
	}
	if (level <= NEXUS_LOG_WARN || verbose)
		fprintf(stderr, "nbd-serve: %s\n", msg);
}

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void event_cb(void *ud, const struct nexus_event_info *ev)
{
	(void)ud;
	pthread_mutex_lock(&out_lock);
	printf("EVENT %s peer=%s reason=%s error=%d object=%s\n",
	       nexus_event_kind_name(ev->kind), ev->peer ? ev->peer : "",
	       nexus_reason_name(ev->reason), ev->error,
	       ev->object ? ev->object : "");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static void *stdin_thread(void *arg)
{
	char buf[256];

	(void)arg;
	while (fread(buf, 1, sizeof(buf), stdin) > 0)
		;
	kill(getpid(), SIGTERM);
	return NULL;
}

int main(int argc, char **argv)
{
	struct nexus_ctx_opts co = NEXUS_CTX_OPTS_INIT;
	struct nexus_pipeline *pls[MAX_ITEMS];
	struct nexus_export *exps[MAX_ITEMS];
	unsigned npl = 0, nexp = 0;
	struct nexus_ctx *ctx;
	bool use_stdin = false;
	sigset_t set;
	int rc, sig;

	co.log_fn = log_cb;
	co.log_level = NEXUS_LOG_DEBUG;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else if (!strcmp(argv[i], "--stdin"))
			use_stdin = true;
		else if (!strcmp(argv[i], "--events"))
			co.event_fn = event_cb;
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			co.reactors = (unsigned)atoi(argv[++i]);
	}
	rc = nexus_ctx_create(&co, &ctx);
	if (rc) {
		fprintf(stderr, "nbd-serve: context: %s\n", nexus_last_error());
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--stdin") ||
		    !strcmp(argv[i], "--events"))
			continue;
		if (!strcmp(argv[i], "-r")) {
			i++;
			continue;
		}
		if (!strcmp(argv[i], "-e") && i + 1 < argc) {
			if (!npl || nexp == MAX_ITEMS) {
				fprintf(stderr, "nbd-serve: -e needs a "
					"pipeline before it\n");
				return 2;
			}
			rc = nexus_export_create(ctx, argv[++i], &exps[nexp]);
			if (rc == 0) {
				rc = nexus_export_add_dev(
					exps[nexp],
					nexus_pipeline_dev(pls[npl - 1]), NULL);
				if (rc)
					nexus_export_destroy(exps[nexp]);
			}
			if (rc) {
				fprintf(stderr, "nbd-serve: %s: %s\n", argv[i],
					nexus_last_error());
				return 1;
			}
			nexp++;
			continue;
		}
		if (npl == MAX_ITEMS)
			return 2;
		rc = nexus_pipeline_open(ctx, argv[i], &pls[npl]);
		if (rc) {
			fprintf(stderr, "nbd-serve: %s: %s\n", argv[i],
				nexus_last_error());
			return 1;
		}
		npl++;
	}
	if (!npl) {
		fprintf(stderr, "usage: nbd-serve [-v] [-r N] [--stdin] "
			"PIPELINE [-e SPEC]... ...\n");
		return 2;
	}
	if (use_stdin) {
		pthread_t t;

		pthread_create(&t, NULL, stdin_thread, NULL);
		pthread_detach(t);
	}
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGUSR1) {
			struct nexus_conn_info ci[64];
			int total = 0;

			for (unsigned i = 0; i < npl + nexp; i++) {
				struct nexus_export *e =
					i < npl ? nexus_pipeline_export(pls[i])
						: exps[i - npl];

				if (!e)
					continue;
				for (unsigned k = 0; k < 64; k++)
					ci[k] = (struct nexus_conn_info)
						NEXUS_CONN_INFO_INIT;
				rc = nexus_export_list_conns(e, ci, 64);
				if (rc < 0) {
					printf("CONNS-FAILED %s\n",
					       nexus_last_error());
					continue;
				}
				for (int k = 0; k < rc && k < 64; k++)
					printf("CONN '%s' %s %llu %llu %llu "
					       "%llu %u\n", ci[k].export_name,
					       ci[k].peer,
					       (unsigned long long)ci[k].requests,
					       (unsigned long long)ci[k].errors,
					       (unsigned long long)ci[k].bytes_read,
					       (unsigned long long)
						       ci[k].bytes_written,
					       ci[k].reactor);
				total += rc;
			}
			printf("CONNS %d\n", total);
			fflush(stdout);
		}
		if (sig == SIGUSR2) {
			bool ok = true;
			char buf[512];

			for (unsigned i = 0; i < nexp; i++)
				nexus_export_destroy(exps[i]);
			nexp = 0;
			for (unsigned i = 0; i < npl; i++) {
				struct nexus_dev *d = nexus_pipeline_dev(pls[i]);

				if (nexus_dev_pread(d, buf, sizeof(buf), 0) !=
				    (ssize_t)sizeof(buf))
					ok = false;
			}
			printf(ok ? "STOPPED\n" : "STOP-FAILED\n");
			fflush(stdout);
		}
	}
	for (unsigned i = 0; i < nexp; i++)
		nexus_export_destroy(exps[i]);
	for (unsigned i = 0; i < npl; i++)
		nexus_pipeline_close(pls[i]);
	nexus_ctx_destroy(ctx);
	return 0;
}
