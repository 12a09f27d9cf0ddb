// SPDX-License-Identifier: MIT

package nexus

/*
#include <stdlib.h>
#include <nexus/nexus.h>
*/
import "C"

import (
	"strings"
	"sync"
	"unsafe"
)

// ConnInfo describes one client connection of an export.
type ConnInfo struct {
	Peer       string // e.g. "127.0.0.1:50312"
	ExportName string // the export name the client selected
	// HostID is the host identity the client gave (NVMe host NQN, iSCSI
	// initiator IQN); "" where the protocol has none (NBD).
	HostID       string
	Reactor      int    // reactor serving the connection
	Requests     uint64 // requests completed
	Errors       uint64 // requests that failed
	BytesRead    uint64 // bytes sent to the client as read data
	BytesWritten uint64 // bytes received from the client as write data
}

// ExportDevOptions are the options of one device of an export.
type ExportDevOptions struct {
	// Name is the name clients select the device by (NBD export name,
	// iSCSI LUN name); "" means the driver's default (for NBD the
	// spec's name=, else "").
	Name string
	// ID is the device's number in the export (NVMe namespace ID, LUN);
	// 0 means the lowest free one.
	ID uint32
	// ReadOnly serves the device read-only.
	ReadOnly bool
}

// Export is a running export: a protocol server (NBD, ...) serving
// devices.  Make one with Context.CreateExport and serve devices with
// Add; Device.Export does both for one device; a pipeline that ends in
// an export stage has one (Pipeline.Export).  While an export serves a
// device, the device's Close fails with EBUSY.
type Export struct {
	mu    sync.RWMutex // held shared by calls, exclusively by Close
	e     *C.struct_nexus_export
	cptr  unsafe.Pointer // the C handle, also once closed
	ctx   *Context
	spec  string
	owned bool // belongs to a Pipeline

	devMu sync.Mutex
	devs  []*Device
	home  *Device // made by Device.Export: stops with that device
}

func newExport(ctx *Context, e *C.struct_nexus_export, spec string, owned bool) *Export {
	exp := &Export{e: e, cptr: unsafe.Pointer(e), ctx: ctx, spec: spec, owned: owned}
	ctx.objects.register(exp.cptr, exp, true)
	return exp
}

// CreateExport starts an export with no device yet, e.g.
// ctx.CreateExport("nbd:listen=127.0.0.1:10809"); serve devices with
// Add.  Errors: EINVAL (bad spec: the message names the option), ENOENT
// (unknown export driver), EADDRINUSE, ...
func (ctx *Context) CreateExport(spec string) (*Export, error) {
	var exp *Export
	err := ctx.use(func(c *C.struct_nexus_ctx) error {
		cs := C.CString(spec)
		defer C.free(unsafe.Pointer(cs))
		var e *C.struct_nexus_export
		done := ctx.objects.creating()
		defer done()
		if _, err := call("nexus_export_create", func() int64 {
			return int64(C.nexus_export_create(c, cs, &e))
		}); err != nil {
			return err
		}
		exp = newExport(ctx, e, spec, false)
		ctx.adopt(exp)
		return nil
	})
	return exp, err
}

func (exp *Export) closed() bool {
	exp.mu.RLock()
	defer exp.mu.RUnlock()
	return exp.e == nil
}

// use runs f with the export's handle held against a concurrent Close.
func (exp *Export) use(f func(e *C.struct_nexus_export) error) error {
	exp.mu.RLock()
	defer exp.mu.RUnlock()
	if exp.e == nil {
		return errClosed("export")
	}
	return f(exp.e)
}

// Context returns the context the export belongs to.
func (exp *Export) Context() *Context { return exp.ctx }

// Spec returns the export stage text, e.g. "nbd:listen=127.0.0.1:10809".
func (exp *Export) Spec() string { return exp.spec }

// Devices returns the devices served through this binding, in the order
// they were added.
func (exp *Export) Devices() []*Device {
	exp.devMu.Lock()
	defer exp.devMu.Unlock()
	return append([]*Device(nil), exp.devs...)
}

// Device returns the (first) device served, or nil.
func (exp *Export) Device() *Device {
	exp.devMu.Lock()
	defer exp.devMu.Unlock()
	if len(exp.devs) == 0 {
		return nil
	}
	return exp.devs[0]
}

// DevCount returns the number of devices the export serves (the
// library's count).
func (exp *Export) DevCount() (int, error) {
	n := 0
	err := exp.use(func(e *C.struct_nexus_export) error {
		rc, err := call("nexus_export_dev_count", func() int64 {
			return int64(C.nexus_export_dev_count(e))
		})
		n = int(rc)
		return err
	})
	return n, err
}

// Add serves dev on the export; opts may be nil.  The export holds the
// device: its Close fails with EBUSY until Remove (or the export's
// Close).  Errors: EEXIST (the name or id is taken, or the device is
// served already), EOPNOTSUPP (the driver serves one device and has
// one), EINVAL (a device of another context, a name too long).
func (exp *Export) Add(dev *Device, opts *ExportDevOptions) error {
	return exp.use(func(e *C.struct_nexus_export) error {
		return dev.use(func(d *C.struct_nexus_dev) error {
			o := C.struct_nexus_export_dev_opts{size: C.sizeof_struct_nexus_export_dev_opts}
			if opts != nil {
				if opts.Name != "" {
					o.name = C.CString(opts.Name)
					defer C.free(unsafe.Pointer(o.name))
				}
				o.id = C.uint32_t(opts.ID)
				if opts.ReadOnly {
					o.flags |= C.NEXUS_EXPORT_DEV_READ_ONLY
				}
			}
			if _, err := call("nexus_export_add_dev", func() int64 {
				return int64(C.nexus_export_add_dev(e, d, &o))
			}); err != nil {
				return err
			}
			exp.devMu.Lock()
			exp.devs = append(exp.devs, dev)
			exp.devMu.Unlock()
			return nil
		})
	})
}

// Remove stops serving dev: its connections are drained and closed, the
// other devices keep being served, and dev can be closed again.  An
// error wrapping fs.ErrNotExist (ENOENT) if the export does not serve it.
func (exp *Export) Remove(dev *Device) error {
	return exp.use(func(e *C.struct_nexus_export) error {
		return dev.use(func(d *C.struct_nexus_dev) error {
			if _, err := call("nexus_export_remove_dev", func() int64 {
				return int64(C.nexus_export_remove_dev(e, d))
			}); err != nil {
				return err
			}
			exp.devMu.Lock()
			for i, v := range exp.devs {
				if v == dev {
					exp.devs = append(exp.devs[:i:i], exp.devs[i+1:]...)
					break
				}
			}
			exp.devMu.Unlock()
			return nil
		})
	})
}

// Close refuses new clients, finishes or fails requests in flight,
// closes the connections and releases the devices (they stay open).  An
// export that belongs to a Pipeline stops with it; Close on it does
// nothing.  Closing twice is harmless.
func (exp *Export) Close() error {
	if exp.owned {
		return nil
	}
	e := exp.detach()
	if e == nil {
		return nil
	}
	C.nexus_export_destroy(e)
	exp.devMu.Lock()
	exp.devs = nil
	home := exp.home
	exp.home = nil
	exp.devMu.Unlock()
	if home != nil {
		home.expMu.Lock()
		delete(home.exports, exp)
		home.expMu.Unlock()
	}
	exp.ctx.forget(exp)
	exp.ctx.objects.retire(exp.cptr, exp)
	return nil
}

// Stop is Close.
func (exp *Export) Stop() error { return exp.Close() }

func (exp *Export) detach() *C.struct_nexus_export {
	exp.mu.Lock()
	defer exp.mu.Unlock()
	e := exp.e
	exp.e = nil
	return e
}

// Conns lists the export's current connections with their counters.
func (exp *Export) Conns() ([]ConnInfo, error) {
	exp.mu.RLock()
	defer exp.mu.RUnlock()
	if exp.e == nil {
		return nil, errClosed("export")
	}
	max := 16
	for {
		arr := (*C.struct_nexus_conn_info)(C.calloc(C.size_t(max), C.sizeof_struct_nexus_conn_info))
		ci := unsafe.Slice(arr, max)
		for i := range ci {
			ci[i].size = C.sizeof_struct_nexus_conn_info
		}
		rc, err := call("nexus_export_list_conns", func() int64 {
			return int64(C.nexus_export_list_conns(exp.e, arr, C.uint(max)))
		})
		if err != nil {
			C.free(unsafe.Pointer(arr))
			return nil, err
		}
		if int(rc) > max {
			C.free(unsafe.Pointer(arr))
			max = int(rc) + 16
			continue
		}
		out := make([]ConnInfo, rc)
		for i := range out {
			c := &ci[i]
			out[i] = ConnInfo{
				Peer:         C.GoString(&c.peer[0]),
				ExportName:   C.GoString(&c.export_name[0]),
				HostID:       C.GoString(&c.host_id[0]),
				Reactor:      int(c.reactor),
				Requests:     uint64(c.requests),
				Errors:       uint64(c.errors),
				BytesRead:    uint64(c.bytes_read),
				BytesWritten: uint64(c.bytes_written),
			}
		}
		C.free(unsafe.Pointer(arr))
		return out, nil
	}
}

// Pipeline is a built pipeline: a device stack and, if its text ended
// with an export stage, the running export.  Both belong to the pipeline
// and are closed by its Close.
type Pipeline struct {
	mu   sync.Mutex
	p    *C.struct_nexus_pipeline
	ctx  *Context
	text string
	dev  *Device
	exp  *Export
}

func newPipeline(ctx *Context, p *C.struct_nexus_pipeline, text string) *Pipeline {
	pl := &Pipeline{p: p, ctx: ctx, text: text}
	pl.dev = newDevice(ctx, C.nexus_pipeline_dev(p), true)
	ctx.objects.register(pl.dev.cptr, pl.dev, true)
	if e := C.nexus_pipeline_export(p); e != nil {
		spec := text
		if i := strings.LastIndexByte(text, '|'); i >= 0 {
			spec = strings.TrimSpace(text[i+1:])
		}
		pl.exp = newExport(ctx, e, spec, true)
		pl.exp.devs = []*Device{pl.dev}
	}
	return pl
}

// Text returns the pipeline text.
func (pl *Pipeline) Text() string { return pl.text }

// Device returns the device at the top of the stack.
func (pl *Pipeline) Device() *Device { return pl.dev }

// Export returns the running export, or nil if the pipeline has none.
func (pl *Pipeline) Export() *Export { return pl.exp }

// Close stops the exports and closes the device stack.  Closing twice is
// harmless.
func (pl *Pipeline) Close() error {
	pl.mu.Lock()
	p := pl.p
	pl.p = nil
	pl.mu.Unlock()
	if p == nil {
		return nil
	}
	pl.dev.detach()
	if pl.exp != nil {
		pl.exp.detach()
	}
	C.nexus_pipeline_close(p)
	if pl.exp != nil {
		pl.exp.devMu.Lock()
		pl.exp.devs = nil
		pl.exp.devMu.Unlock()
		pl.ctx.objects.retire(pl.exp.cptr, pl.exp)
	}
	pl.ctx.objects.retire(pl.dev.cptr, pl.dev)
	pl.ctx.forget(pl)
	return nil
}
