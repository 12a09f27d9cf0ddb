/* SPDX-License-Identifier: MIT */
/* TCP socket settings shared by the network drivers (tcp.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nexus/nexus_driver.h>

#include "tcp.h"

bool nx_tcp_is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a =
			&((const struct sockaddr_in6 *)&ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static int set_algo(int fd, const char *name)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name,
			  (socklen_t)strlen(name)) < 0 ? -errno : 0;
}

int nx_tcp_congestion_check(const char *stage, const char *algo)
{
	int fd, rc;

	if (!algo || !strcmp(algo, "auto") || !strcmp(algo, "system"))
		return 0;
	if (!*algo || strlen(algo) >= 16) /* TCP_CA_NAME_MAX */
		return nexus_error(-EINVAL, "%s: congestion='%.40s' is not an "
				   "algorithm name", stage, algo);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nexus_error(-errno, "%s: socket: %s", stage,
				   strerror(errno));
	rc = set_algo(fd, algo);
	close(fd);
	if (rc == -ENOENT)
		return nexus_error(-EINVAL, "%s: congestion=%s: no such TCP "
				   "congestion control in this kernel (see /proc/"
				   "sys/net/ipv4/tcp_available_congestion_control)",
				   stage, algo);
	if (rc)
		return nexus_error(-EINVAL, "%s: congestion=%s cannot be set "
				   "by this process (%s; see /proc/sys/net/ipv4/"
				   "tcp_allowed_congestion_control)", stage, algo,
				   strerror(-rc));
	return 0;
}

void nx_tcp_congestion(int fd, const char *algo)
{
	if (algo && !strcmp(algo, "system"))
		return;
	if (algo && strcmp(algo, "auto")) {
		(void)set_algo(fd, algo);
		return;
	}
	if (nx_tcp_is_loopback(fd) && set_algo(fd, "cubic"))
		(void)set_algo(fd, "reno");
}
