// SPDX-License-Identifier: MIT

package nexus

/*
#include <stdlib.h>
#include <nexus/nexus.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Op is an I/O operation (enum nexus_op).
type Op int

// Operations.
const (
	OpRead        Op = C.NEXUS_OP_READ
	OpWrite       Op = C.NEXUS_OP_WRITE
	OpFlush       Op = C.NEXUS_OP_FLUSH
	OpTrim        Op = C.NEXUS_OP_TRIM
	OpWriteZeroes Op = C.NEXUS_OP_WRITE_ZEROES
	OpBlockStatus Op = C.NEXUS_OP_BLOCK_STATUS
	// There is deliberately no count: Stats.PerOp has an entry for
	// every operation the library knows.
)

// String returns the operation's name, e.g. "write-zeroes".
func (op Op) String() string {
	switch op {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFlush:
		return "flush"
	case OpTrim:
		return "trim"
	case OpWriteZeroes:
		return "write-zeroes"
	case OpBlockStatus:
		return "block-status"
	}
	return fmt.Sprintf("op(%d)", int(op))
}

// IOFlags modify a write or write-zeroes request (NEXUS_IO_*).
type IOFlags uint32

// I/O flags.
const (
	// FUA: the write is durable when it completes.
	FUA IOFlags = C.NEXUS_IO_FUA
	// NoUnmap: write-zeroes keeps the range allocated.
	NoUnmap IOFlags = C.NEXUS_IO_NO_UNMAP
	// FastZero: write-zeroes fails with EOPNOTSUPP rather than writing
	// zeroes slowly.
	FastZero IOFlags = C.NEXUS_IO_FAST_ZERO
)

// DevFlags describe a device (NEXUS_DEV_*).
type DevFlags uint32

// Device flags.
const (
	ReadOnly    DevFlags = C.NEXUS_DEV_READ_ONLY
	TrimZeroes  DevFlags = C.NEXUS_DEV_TRIM_ZEROES
	MultiConn   DevFlags = C.NEXUS_DEV_MULTI_CONN
	BlockStatus DevFlags = C.NEXUS_DEV_BLOCK_STATUS
)

// Info describes what a device is and can do.
type Info struct {
	Size              int64    // size in bytes
	LogicalBlockSize  int      // required alignment of offsets and lengths
	PhysicalBlockSize int      // preferred alignment
	OptimalIOSize     int      // 0 if unknown
	MaxIOSize         int      // largest single read or write request
	Ops               uint32   // bit (1 << Op) per supported operation
	Flags             DevFlags // ReadOnly, TrimZeroes, ...
	Driver            string   // driver of the top of the stack
	Name              string   // the pipeline text that opened it
}

// Supports reports whether the device handles op.
func (i Info) Supports(op Op) bool { return i.Ops&(1<<uint(op)) != 0 }

// ReadOnly reports whether writes are refused.
func (i Info) ReadOnly() bool { return i.Flags&ReadOnly != 0 }

// LatencyBuckets is the number of buckets of Stats.Latency.
const LatencyBuckets = C.NEXUS_LAT_BUCKETS

// Stats is a snapshot of a device's counters.
type Stats struct {
	Ops          uint64 // completed operations of every kind, failed ones included
	Errors       uint64 // failed operations of every kind
	BytesRead    uint64
	BytesWritten uint64
	InFlight     uint64 // submitted and not yet completed
	// Latency is a histogram: bucket i counts completions whose latency
	// lies in [LatencyBucketFloor(i), LatencyBucketFloor(i+1)).
	Latency [LatencyBuckets]uint64
	// PerOp has the counters of every operation the library knows,
	// indexed by Op: st.PerOp[nexus.OpWrite].Ops.
	PerOp []OpStats
}

// OpStats are the counters of one operation of a device.
type OpStats struct {
	Ops    uint64 // completed, failed ones included
	Errors uint64 // failed
	// Bytes of the successful operations: data moved for reads and
	// writes, range covered for trim, write-zeroes and block status.
	Bytes uint64
}

// Percentile returns an upper estimate of the pct latency percentile
// (0 <= pct <= 100), or 0 if nothing completed.
func (s *Stats) Percentile(pct float64) time.Duration {
	return time.Duration(C.nexus_lat_percentile(
		(*C.uint64_t)(unsafe.Pointer(&s.Latency[0])), C.double(pct)))
}

// LatencyBucketFloor returns the lower bound of latency bucket i.
func LatencyBucketFloor(i int) time.Duration {
	return time.Duration(C.nexus_lat_bucket_floor(C.uint(i)))
}

// Extent is one range reported by BlockStatus.
type Extent struct {
	Offset, Length int64
	Hole           bool // not allocated
	Zero           bool // reads as zeroes
}

// Device is an open device: a source, or a transform stacked on other
// devices.  It implements io.ReaderAt, io.WriterAt and io.Closer; offsets
// and lengths must be multiples of the logical block size.  All methods
// may be called from many goroutines at once.
type Device struct {
	mu     sync.RWMutex // held shared by calls, exclusively by Close
	d      *C.struct_nexus_dev
	ctx    *Context
	owned  bool // belongs to a Pipeline or a stack: Close does nothing
	ownCtx bool // opened by nexus.Open: close the context too
	name   string
	size   int64
	maxIO  int

	expMu   sync.Mutex
	exports map[*Export]struct{} // from Device.Export: stop with it
	views   map[*Device]struct{} // Children handed out
	cptr    unsafe.Pointer       // the C handle, also once closed
}

func newDevice(ctx *Context, d *C.struct_nexus_dev, owned bool) *Device {
	dev := &Device{d: d, ctx: ctx, owned: owned,
		exports: make(map[*Export]struct{}),
		views:   make(map[*Device]struct{}),
		cptr:    unsafe.Pointer(d)}
	info := C.struct_nexus_dev_info{size: C.sizeof_struct_nexus_dev_info}
	C.nexus_dev_get_info(d, &info)
	dev.name = C.GoString(info.name)
	dev.size = int64(info.dev_size)
	dev.maxIO = int(info.max_io_size)
	if dev.maxIO <= 0 {
		dev.maxIO = 32 << 20
	}
	ctx.objects.register(dev.cptr, dev, !owned)
	return dev
}

func (dev *Device) closed() bool {
	dev.mu.RLock()
	defer dev.mu.RUnlock()
	return dev.d == nil
}

// use runs f with the device's handle held against a concurrent Close.
func (dev *Device) use(f func(d *C.struct_nexus_dev) error) error {
	dev.mu.RLock()
	defer dev.mu.RUnlock()
	if dev.d == nil {
		return errClosed("device")
	}
	return f(dev.d)
}

// Context returns the context the device belongs to.
func (dev *Device) Context() *Context { return dev.ctx }

// Name returns the pipeline text that opened the device.
func (dev *Device) Name() string { return dev.name }

// Size returns the device's size in bytes.
func (dev *Device) Size() int64 { return dev.size }

// String returns the device's name.
func (dev *Device) String() string { return dev.name }

// Close stops the exports started with Export, finishes I/O in flight and
// closes the device.  A device that belongs to a Pipeline or to a stack
// (from Children) is closed with it; Close on it does nothing.  Closing
// twice is harmless.
//
// While an export made with Context.CreateExport serves the device,
// Close fails with an error wrapping syscall.EBUSY whose message names
// the export, and the device stays open and usable: remove it from the
// export (Export.Remove) or close the export first.
func (dev *Device) Close() error {
	dev.mu.RLock()
	owned := dev.owned
	dev.mu.RUnlock()
	if owned {
		return nil
	}
	dev.stopExports()
	// Hold the device and the views below it exclusively: no call is in
	// progress while the library closes the stack, and on a refusal
	// (EBUSY) they simply go on.
	dev.mu.Lock()
	d := dev.d
	if d == nil {
		dev.mu.Unlock()
		return nil
	}
	views := dev.lockViews()
	_, err := call("nexus_dev_close", func() int64 {
		return int64(C.nexus_dev_close(d))
	})
	if err == nil {
		dev.d = nil
		for _, v := range views {
			v.d = nil
		}
	}
	for _, v := range views {
		v.mu.Unlock()
	}
	dev.mu.Unlock()
	if err != nil {
		return err
	}
	dev.ctx.forget(dev)
	dev.ctx.objects.retire(dev.cptr, dev)
	if dev.ownCtx {
		return dev.ctx.Close()
	}
	return nil
}

// lockViews write-locks the Children views below dev, depth first, and
// returns them.
func (dev *Device) lockViews() []*Device {
	dev.expMu.Lock()
	vs := make([]*Device, 0, len(dev.views))
	for v := range dev.views {
		vs = append(vs, v)
	}
	dev.expMu.Unlock()
	var out []*Device
	for _, v := range vs {
		v.mu.Lock()
		out = append(out, v)
		out = append(out, v.lockViews()...)
	}
	return out
}

// stopExports closes the exports started with Export on dev and the
// views below it.
func (dev *Device) stopExports() {
	dev.expMu.Lock()
	exps := make([]*Export, 0, len(dev.exports))
	for e := range dev.exports {
		exps = append(exps, e)
	}
	views := make([]*Device, 0, len(dev.views))
	for v := range dev.views {
		views = append(views, v)
	}
	dev.expMu.Unlock()
	for _, e := range exps {
		e.Close()
	}
	for _, v := range views {
		v.stopExports()
	}
}

// detach invalidates the handle and those of the Children views below
// it (waiting for calls in progress) after stopping the exports started
// on them, without closing anything in C (the owner does that); it
// returns the C handle, or nil if it was already detached.
func (dev *Device) detach() *C.struct_nexus_dev {
	dev.stopExports()
	dev.mu.Lock()
	d := dev.d
	dev.d = nil
	dev.mu.Unlock()
	if d == nil {
		return nil
	}
	dev.expMu.Lock()
	views := dev.views
	dev.expMu.Unlock()
	for v := range views {
		v.detach()
	}
	return d
}

// Children returns the devices directly below this one in its stack (a
// transform's children; none for a source), as they are now (see
// AttachChild).  They belong to the stack: they are closed with it, and
// their Close does nothing (or fails with EBUSY for one given to
// AttachChild).
func (dev *Device) Children() ([]*Device, error) {
	var out []*Device
	err := dev.use(func(d *C.struct_nexus_dev) error {
		n := C.nexus_dev_child_count(d)
		for i := C.uint(0); i < n; i++ {
			c := C.nexus_dev_child(d, i)
			if c == nil {
				continue
			}
			v, ok := dev.ctx.objects.find(unsafe.Pointer(c)).(*Device)
			if !ok { // else: one we attached
				v = newDevice(dev.ctx, c, true)
			}
			dev.expMu.Lock()
			dev.views[v] = struct{}{}
			dev.expMu.Unlock()
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// AttachChild attaches child, an open device of the same context that
// nothing else holds, as a new (last) child of this running transform,
// e.g. a replica of a mirror; I/O goes on meanwhile.  The child then
// belongs to this device: it is closed with it, and its own Close fails
// with EBUSY until DetachChild.  Errors: EOPNOTSUPP (the driver cannot
// attach while open), EBUSY (child is served by an export or part of a
// stack), ENOSPC (no room for more children), EINVAL (another context,
// a loop, a child the driver refuses); child then stays as it was.
func (dev *Device) AttachChild(child *Device) error {
	return dev.use(func(d *C.struct_nexus_dev) error {
		return child.use(func(c *C.struct_nexus_dev) error {
			if _, err := call("nexus_dev_attach_child", func() int64 {
				return int64(C.nexus_dev_attach_child(d, c))
			}); err != nil {
				return err
			}
			dev.expMu.Lock()
			if dev.views != nil {
				dev.views[child] = struct{}{}
			}
			dev.expMu.Unlock()
			return nil
		})
	})
}

// DetachChild detaches child from this running transform: once it
// returns no I/O of this device goes to it, and it is the caller's again
// (close it, or attach it elsewhere).  It works for devices from
// Children as for those given to AttachChild.  Errors: ENOENT (not a
// child of this device), EBUSY (the last child, or one the driver cannot
// spare), EOPNOTSUPP.
func (dev *Device) DetachChild(child *Device) error {
	err := dev.use(func(d *C.struct_nexus_dev) error {
		return child.use(func(c *C.struct_nexus_dev) error {
			_, err := call("nexus_dev_detach_child", func() int64 {
				return int64(C.nexus_dev_detach_child(d, c))
			})
			return err
		})
	})
	if err != nil {
		return err
	}
	dev.expMu.Lock()
	delete(dev.views, child)
	dev.expMu.Unlock()
	child.mu.Lock()
	wasView := child.owned
	child.owned = false
	child.mu.Unlock()
	if wasView { // a view from Children: the caller's device now
		dev.ctx.adopt(child)
	}
	return nil
}

// Control changes a setting of the device stack at run time, e.g.
// dev.Control("throttle.iops", "1000") or dev.Control("fault.enable",
// "off").  key is [DRIVER.]NAME; the settings are the driver's pipeline
// options.  Errors: EINVAL (bad value), ENOENT (no such stage or
// setting), EOPNOTSUPP (the driver takes no settings).
func (dev *Device) Control(key, value string) error {
	return dev.use(func(d *C.struct_nexus_dev) error {
		ck, cv := C.CString(key), C.CString(value)
		defer C.free(unsafe.Pointer(ck))
		defer C.free(unsafe.Pointer(cv))
		_, err := call("nexus_dev_control", func() int64 {
			return int64(C.nexus_dev_control(d, ck, cv))
		})
		return err
	})
}

// Info describes the device.
func (dev *Device) Info() (Info, error) {
	var out Info
	err := dev.use(func(d *C.struct_nexus_dev) error {
		info := C.struct_nexus_dev_info{size: C.sizeof_struct_nexus_dev_info}
		if _, err := call("nexus_dev_get_info", func() int64 {
			return int64(C.nexus_dev_get_info(d, &info))
		}); err != nil {
			return err
		}
		out = Info{
			Size:              int64(info.dev_size),
			LogicalBlockSize:  int(info.logical_block_size),
			PhysicalBlockSize: int(info.physical_block_size),
			OptimalIOSize:     int(info.optimal_io_size),
			MaxIOSize:         int(info.max_io_size),
			Ops:               uint32(info.ops),
			Flags:             DevFlags(info.flags),
			Driver:            C.GoString(info.driver),
			Name:              C.GoString(info.name),
		}
		return nil
	})
	return out, err
}

// Stats returns a snapshot of the device's counters.
func (dev *Device) Stats() (*Stats, error) {
	var out Stats
	err := dev.use(func(d *C.struct_nexus_dev) error {
		cs := (*C.struct_nexus_dev_stats)(C.calloc(1, C.sizeof_struct_nexus_dev_stats))
		defer C.free(unsafe.Pointer(cs))
		cs.size = C.sizeof_struct_nexus_dev_stats
		if _, err := call("nexus_dev_get_stats", func() int64 {
			return int64(C.nexus_dev_get_stats(d, cs))
		}); err != nil {
			return err
		}
		out.Ops = uint64(cs.ops)
		out.Errors = uint64(cs.errors)
		for op := Op(0); ; op++ {
			st, err := opStats(d, op)
			if errors.Is(err, syscall.ERANGE) {
				break
			}
			if err != nil {
				return err
			}
			out.PerOp = append(out.PerOp, st)
		}
		out.BytesRead = uint64(cs.bytes_read)
		out.BytesWritten = uint64(cs.bytes_written)
		out.InFlight = uint64(cs.in_flight)
		for i := range out.Latency {
			out.Latency[i] = uint64(cs.latency[i])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func opStats(d *C.struct_nexus_dev, op Op) (OpStats, error) {
	cs := C.struct_nexus_op_stats{size: C.sizeof_struct_nexus_op_stats}
	_, err := call("nexus_dev_get_op_stats", func() int64 {
		return int64(C.nexus_dev_get_op_stats(d, C.int(op), &cs))
	})
	return OpStats{Ops: uint64(cs.ops), Errors: uint64(cs.errors), Bytes: uint64(cs.bytes)}, err
}

// OpStats returns the counters of one operation, e.g.
// dev.OpStats(nexus.OpWrite); an error wrapping syscall.ERANGE for an
// operation the library does not know.
func (dev *Device) OpStats(op Op) (OpStats, error) {
	var out OpStats
	err := dev.use(func(d *C.struct_nexus_dev) error {
		var err error
		out, err = opStats(d, op)
		return err
	})
	return out, err
}

// State returns the device's current state (DevOnline, ...).
func (dev *Device) State() (DevState, error) {
	var out DevState
	err := dev.use(func(d *C.struct_nexus_dev) error {
		rc, err := call("nexus_dev_get_state", func() int64 {
			return int64(C.nexus_dev_get_state(d))
		})
		out = DevState(rc)
		return err
	})
	return out, err
}

func checkOffset(off int64) error {
	if off < 0 {
		return &Error{Func: "nexus", Errno: syscall.EINVAL,
			Msg: fmt.Sprintf("negative offset %d", off)}
	}
	return nil
}

// rw transfers p at off in requests of at most maxIO bytes.  p is Go
// memory: C uses it only for the duration of each synchronous call.
func (dev *Device) rw(write bool, p []byte, off int64, flags IOFlags) (int, error) {
	done := 0
	err := dev.use(func(d *C.struct_nexus_dev) error {
		for done < len(p) {
			n := len(p) - done
			if n > dev.maxIO {
				n = dev.maxIO
			}
			buf := unsafe.Pointer(&p[done])
			at := C.uint64_t(off + int64(done))
			var err error
			if write {
				_, err = call("nexus_dev_pwrite", func() int64 {
					return int64(C.nexus_dev_pwrite(d, buf, C.size_t(n), at, C.uint32_t(flags)))
				})
			} else {
				_, err = call("nexus_dev_pread", func() int64 {
					return int64(C.nexus_dev_pread(d, buf, C.size_t(n), at))
				})
			}
			if err != nil {
				return err
			}
			done += n
		}
		return nil
	})
	return done, err
}

// ReadAt reads len(p) bytes at offset off (io.ReaderAt).  Reading across
// the end of the device returns the bytes up to the end and io.EOF.
func (dev *Device) ReadAt(p []byte, off int64) (int, error) {
	if err := checkOffset(off); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= dev.size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > dev.size-off {
		p = p[:dev.size-off]
		eof = io.EOF
	}
	n, err := dev.rw(false, p, off, 0)
	if err != nil {
		return n, err
	}
	return n, eof
}

// WriteAt writes len(p) bytes at offset off (io.WriterAt).
func (dev *Device) WriteAt(p []byte, off int64) (int, error) {
	return dev.WriteAtFlags(p, off, 0)
}

// WriteAtFlags is WriteAt with I/O flags (FUA).
func (dev *Device) WriteAtFlags(p []byte, off int64, flags IOFlags) (int, error) {
	if err := checkOffset(off); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	return dev.rw(true, p, off, flags)
}

// Flush makes completed writes durable.
func (dev *Device) Flush() error {
	return dev.use(func(d *C.struct_nexus_dev) error {
		_, err := call("nexus_dev_flush", func() int64 {
			return int64(C.nexus_dev_flush(d))
		})
		return err
	})
}

// Trim discards a range; it reads back as unspecified data unless the
// device has the TrimZeroes flag.  EOPNOTSUPP if the device cannot trim.
func (dev *Device) Trim(off, length int64) error {
	if err := checkOffset(off); err != nil {
		return err
	}
	return dev.use(func(d *C.struct_nexus_dev) error {
		_, err := call("nexus_dev_trim", func() int64 {
			return int64(C.nexus_dev_trim(d, C.uint64_t(off), C.uint64_t(length), 0))
		})
		return err
	})
}

// WriteZeroes makes a range read back as zeroes.  flags: FUA, NoUnmap,
// FastZero.
func (dev *Device) WriteZeroes(off, length int64, flags IOFlags) error {
	if err := checkOffset(off); err != nil {
		return err
	}
	return dev.use(func(d *C.struct_nexus_dev) error {
		_, err := call("nexus_dev_write_zeroes", func() int64 {
			return int64(C.nexus_dev_write_zeroes(d, C.uint64_t(off),
				C.uint64_t(length), C.uint32_t(flags)))
		})
		return err
	})
}

// BlockStatus reports the allocation status of a range as at most max
// contiguous extents starting at off (they may cover less than length).
func (dev *Device) BlockStatus(off, length int64, max int) ([]Extent, error) {
	if err := checkOffset(off); err != nil {
		return nil, err
	}
	if max < 1 {
		max = 1
	}
	ext := make([]C.struct_nexus_extent, max)
	var out []Extent
	err := dev.use(func(d *C.struct_nexus_dev) error {
		rc, err := call("nexus_dev_block_status", func() int64 {
			return int64(C.nexus_dev_block_status(d, C.uint64_t(off),
				C.uint64_t(length), &ext[0], C.uint(max)))
		})
		if err != nil {
			return err
		}
		for _, e := range ext[:rc] {
			out = append(out, Extent{
				Offset: int64(e.offset), Length: int64(e.length),
				Hole: e.flags&C.NEXUS_EXTENT_HOLE != 0,
				Zero: e.flags&C.NEXUS_EXTENT_ZERO != 0,
			})
		}
		return nil
	})
	return out, err
}

// Export serves the device on an export of its own, e.g.
// dev.Export("nbd:listen=127.0.0.1:10809"): shorthand for
// Context.CreateExport and Export.Add with default options.  The export
// runs until its Close or the device's Close, which stops it first.
func (dev *Device) Export(spec string) (*Export, error) {
	if dev.closed() {
		return nil, errClosed("device")
	}
	exp, err := dev.ctx.CreateExport(spec)
	if err != nil {
		return nil, err
	}
	if err := exp.Add(dev, nil); err != nil {
		exp.Close()
		return nil, err
	}
	exp.devMu.Lock()
	exp.home = dev
	exp.devMu.Unlock()
	dev.expMu.Lock()
	dev.exports[exp] = struct{}{}
	dev.expMu.Unlock()
	return exp, nil
}

var (
	_ io.ReaderAt = (*Device)(nil)
	_ io.WriterAt = (*Device)(nil)
	_ io.Closer   = (*Device)(nil)
)
