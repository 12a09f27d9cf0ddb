#!/bin/sh
# SPDX-License-Identifier: MIT
# kill -9 of a nexus-pipe serving a mirror in the middle of writes, one
# child faulted shortly before: after a restart the state record names
# only the child that got every write, reads come from it even when
# another child is preferred, every write acknowledged before the kill
# is there, and the other child is rebuilt to the same bytes, copying
# only the regions written after the fault.  The steps: crash_test in
# mirror-lib.sh (mirror-etcd.sh runs them with the etcd store).
. "${srcdir:-.}/tests/mirror/mirror-lib.sh"
# cmp: diffutils, an Essential package of Debian
need_nbd_python
scratch mirror-crash
crash_test "$T/state" "cat $T/state"
echo "OK: crash, restart from the in-sync child, rebuild"
