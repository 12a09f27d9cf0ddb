// SPDX-License-Identifier: MIT

package nexus

/*
#include <nexus/nexus.h>
*/
import "C"

import (
	"fmt"
	"io/fs"
	"runtime"
	"syscall"
)

// Error is returned by every failed libnexus call.  It carries the errno
// the library returned and the library's own message, which names the
// problem (the stage and column of a pipeline, the file, the offset...).
//
// Error unwraps to its syscall.Errno, so the standard tests work:
//
//	errors.Is(err, fs.ErrNotExist)   // a missing file or unknown driver
//	errors.Is(err, syscall.EINVAL)
//	var ne *nexus.Error; errors.As(err, &ne)
type Error struct {
	// Func is the C function that failed, e.g. "nexus_dev_open".
	Func string
	// Errno is the (positive) error number.
	Errno syscall.Errno
	// Msg is the library's message (nexus_last_error()), or the errno's
	// text if the library gave none.
	Msg string
}

// Error returns "nexus: " followed by the library's message.
func (e *Error) Error() string {
	return "nexus: " + e.Msg
}

// Unwrap returns the syscall.Errno.
func (e *Error) Unwrap() error { return e.Errno }

// errClosed is returned for calls on a closed handle.
func errClosed(what string) error {
	return fmt.Errorf("nexus: %s is closed: %w", what, fs.ErrClosed)
}

// lastError builds the Error for return value rc of C function fn.  It
// must run on the OS thread that made the failed call (see call).
func lastError(fn string, rc int64) error {
	if rc >= 0 {
		return nil
	}
	e := &Error{Func: fn, Errno: syscall.Errno(-rc)}
	e.Msg = C.GoString(C.nexus_last_error())
	if e.Msg == "" {
		e.Msg = e.Errno.Error()
	}
	return e
}

// call runs one libnexus call and turns a negative return into an Error.
// The goroutine stays on one OS thread for the call and the read of the
// per-thread message, so the message belongs to this call.
func call(fn string, f func() int64) (int64, error) {
	runtime.LockOSThread()
	rc := f()
	err := lastError(fn, rc)
	runtime.UnlockOSThread()
	return rc, err
}
