# SPDX-License-Identifier: MIT
# Shared by the tests that boot a real Linux kernel as the client
# (../shared/tools/vmclient): finding its run.sh without any machine
# path, and reading the guest script's exit status from its output.
#
# vmclient_find: sets VMCLIENT_RUN, or leaves it empty.  Looked for, in
# order: $VMCLIENT_RUN; ../shared beside the source tree; beside the
# main checkout of a git worktree; beside the repository a clean clone
# was cloned from (its origin, when that is a local path).
vmclient_find() {
	[ -n "${VMCLIENT_RUN:-}" ] && [ -x "$VMCLIENT_RUN" ] && return 0
	VMCLIENT_RUN=
	_root=$(cd "${srcdir:-.}" && pwd)
	_common=$(git -C "$_root" rev-parse --path-format=absolute \
		--git-common-dir 2>/dev/null) || _common=
	_origin=$(git -C "$_root" remote get-url origin 2>/dev/null) || _origin=
	case $_origin in /*) ;; file://*) _origin=${_origin#file://} ;; *) _origin= ;; esac
	for _d in "$_root" "${_common:+$(dirname "$_common")}" "$_origin"; do
		[ -n "$_d" ] || continue
		if [ -x "$_d/../shared/tools/vmclient/run.sh" ]; then
			VMCLIENT_RUN=$(cd "$_d/../shared/tools/vmclient" && pwd)/run.sh
			return 0
		fi
	done
	return 1
}

# vmclient_rc FILE: the exit status of the guest script in vmclient's
# output FILE (its "VMCLIENT-RC=N" line; the guest's console may run on
# in the same line), or nothing when the VM did not get that far.
vmclient_rc() {
	sed -n 's/.*VMCLIENT-RC=\([0-9][0-9]*\).*/\1/p' "$1" | tail -n 1
}
