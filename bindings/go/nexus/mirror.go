// SPDX-License-Identifier: MIT

package nexus

/*
#include <nexus/nexus.h>
*/
import "C"

import (
	"math"
	"time"
)

// MirrorChild is a child of a mirror (struct nexus_mirror_child).
type MirrorChild struct {
	Index int    // its place in the mirror (0: the group's first child)
	Name  string // the child's pipeline text
	// State is DevOnline (in sync), DevFaulted, DevOffline or
	// DevRebuilding; Reason says why.
	State  DevState
	Reason Reason
	// Errno of the I/O that faulted it (negative), or 0.
	Error int
	// PartialOK: a rebuild would copy only the regions it missed.
	PartialOK bool
	Reads, Writes, Errors, Timeouts, InFlight uint64
	// DirtyBytes is the size of the regions it missed.
	DirtyBytes uint64
}

// MirrorRebuild is a mirror's rebuild: the running one, else the last
// (struct nexus_mirror_rebuild).
type MirrorRebuild struct {
	// Child being rebuilt, or -1 when none is.
	Child int
	// Partial: the rebuild copies the dirty regions only.
	Partial bool
	// Completed counts the rebuilds finished successfully since open.
	Completed uint64
	// LastResult is 0 or the negative errno of the last finished one.
	LastResult int
	BytesDone  uint64
	BytesTotal uint64
	// Rate is the average rate in bytes per second.
	Rate uint64
	// ETA of the running rebuild at that rate; -1 when unknown or idle.
	ETA time.Duration
}

// MirrorChildren lists the children of the mirror in the device's stack
// (the device itself or one below it); an error wrapping
// fs.ErrNotExist (ENOENT) when the stack has no mirror.
func (dev *Device) MirrorChildren() ([]MirrorChild, error) {
	var out []MirrorChild
	err := dev.use(func(d *C.struct_nexus_dev) error {
		for i, n := 0, 1; i < n; i++ {
			c := C.struct_nexus_mirror_child{size: C.sizeof_struct_nexus_mirror_child}
			rc, err := call("nexus_mirror_get_child", func() int64 {
				return int64(C.nexus_mirror_get_child(d, C.uint(i), &c))
			})
			if err != nil {
				return err
			}
			n = int(rc)
			info := C.struct_nexus_dev_info{size: C.sizeof_struct_nexus_dev_info}
			name := ""
			if c.dev != nil && C.nexus_dev_get_info(c.dev, &info) == 0 {
				name = C.GoString(info.name)
			}
			out = append(out, MirrorChild{
				Index: i, Name: name, State: DevState(c.state),
				Reason: Reason(c.reason), Error: int(c.error),
				PartialOK: c.partial_ok != 0, Reads: uint64(c.reads),
				Writes: uint64(c.writes), Errors: uint64(c.errors),
				Timeouts: uint64(c.timeouts), InFlight: uint64(c.in_flight),
				DirtyBytes: uint64(c.dirty_bytes),
			})
		}
		return nil
	})
	return out, err
}

// MirrorRebuild returns the rebuild of the mirror in the device's stack;
// an error wrapping fs.ErrNotExist when the stack has no mirror.
func (dev *Device) MirrorRebuild() (MirrorRebuild, error) {
	var out MirrorRebuild
	err := dev.use(func(d *C.struct_nexus_dev) error {
		r := C.struct_nexus_mirror_rebuild{size: C.sizeof_struct_nexus_mirror_rebuild}
		r.progress.size = C.sizeof_struct_nexus_copy_progress
		if _, err := call("nexus_mirror_get_rebuild", func() int64 {
			return int64(C.nexus_mirror_get_rebuild(d, &r))
		}); err != nil {
			return err
		}
		out = MirrorRebuild{
			Child: int(r.child), Partial: r.partial != 0,
			Completed: uint64(r.completed), LastResult: int(r.last_result),
			BytesDone:  uint64(r.progress.bytes_done),
			BytesTotal: uint64(r.progress.bytes_total),
			Rate:       uint64(r.progress.rate), ETA: -1,
		}
		if r.child >= 0 && uint64(r.eta_ms) != math.MaxUint64 {
			out.ETA = time.Duration(r.eta_ms) * time.Millisecond
		}
		return nil
	})
	return out, err
}
