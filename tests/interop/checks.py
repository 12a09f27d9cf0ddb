# SPDX-License-Identifier: MIT
# Shared by the nbd-export-*.py checks (imported from the script's own
# directory): check() reports a failed condition and goes on, finish()
# prints the number of failures and exits 1 when there was any.
import sys

failures = 0


def check(cond, what):
    global failures
    if not cond:
        print("FAIL:", what)
        failures += 1
    return cond


def finish(what):
    print("%s: %d failure(s)" % (what, failures))
    sys.exit(1 if failures else 0)
