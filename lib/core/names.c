/* SPDX-License-Identifier: MIT */
/* Names of the event stream's enumerations (nexus.h "Events"), and a
 * device's state. */
#include <errno.h>

#include "internal.h"

const char *nexus_event_kind_name(uint32_t kind)
{
	static const char *const names[] = {
		[NEXUS_EVENT_DEV_STATE] = "dev-state",
		[NEXUS_EVENT_CHILD_ATTACHED] = "child-attached",
		[NEXUS_EVENT_CHILD_DETACHED] = "child-detached",
		[NEXUS_EVENT_EXPORT_STARTED] = "export-started",
		[NEXUS_EVENT_EXPORT_STOPPED] = "export-stopped",
		[NEXUS_EVENT_EXPORT_DEV_ADDED] = "export-dev-added",
		[NEXUS_EVENT_EXPORT_DEV_REMOVED] = "export-dev-removed",
		[NEXUS_EVENT_CONN_OPENED] = "conn-opened",
		[NEXUS_EVENT_CONN_CLOSED] = "conn-closed",
		[NEXUS_EVENT_CLIENT_ERROR] = "client-error",
		[NEXUS_EVENT_IO_TIMEOUT] = "io-timeout",
		[NEXUS_EVENT_COPY_DONE] = "copy-done",
		[NEXUS_EVENT_LOST] = "lost",
	};

	return kind < NX_ARRAY_SIZE(names) && names[kind] ? names[kind]
							  : "unknown";
}

const char *nexus_dev_state_name(int state)
{
	static const char *const names[] = {
		[NEXUS_DEV_STATE_ONLINE] = "online",
		[NEXUS_DEV_STATE_DEGRADED] = "degraded",
		[NEXUS_DEV_STATE_FAULTED] = "faulted",
		[NEXUS_DEV_STATE_OFFLINE] = "offline",
		[NEXUS_DEV_STATE_REBUILDING] = "rebuilding",
		[NEXUS_DEV_STATE_CLOSING] = "closing",
	};

	return state >= 0 && (unsigned)state < NX_ARRAY_SIZE(names) &&
			       names[state]
		       ? names[state]
		       : "unknown";
}

const char *nexus_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		[NEXUS_REASON_NONE] = "none",
		[NEXUS_REASON_IO_ERROR] = "io-error",
		[NEXUS_REASON_TIMEOUT] = "timeout",
		[NEXUS_REASON_CANT_OPEN] = "cannot-open",
		[NEXUS_REASON_NO_SPACE] = "no-space",
		[NEXUS_REASON_USER] = "user",
		[NEXUS_REASON_REBUILD_FAILED] = "rebuild-failed",
		[NEXUS_REASON_PEER_CLOSED] = "peer-closed",
		[NEXUS_REASON_PROTOCOL] = "protocol",
		[NEXUS_REASON_LIMIT] = "limit",
		[NEXUS_REASON_SHUTDOWN] = "shutdown",
	};

	return reason < NX_ARRAY_SIZE(names) && names[reason] ? names[reason]
							      : "unknown";
}

int nexus_dev_get_state(const struct nexus_dev *dev)
{
	if (!dev)
		return nexus_error(-EINVAL, "nexus_dev_get_state: NULL device");
	return atomic_load(&dev->state);
}
