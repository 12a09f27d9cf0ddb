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
	Peer         string // e.g. "127.0.0.1:50312"
	ExportName   string // the export name the client selected
	Reactor      int    // reactor serving the connection
	Requests     uint64 // requests completed
	Errors       uint64 // requests that failed
	BytesRead    uint64 // bytes sent to the client as read data
	BytesWritten uint64 // bytes received from the client as write data
}

// Export is a running export serving one device over a protocol.
type Export struct {
	mu    sync.RWMutex
	e     *C.struct_nexus_export
	dev   *Device
	spec  string
	owned bool // belongs to a Pipeline
}

// Device returns the device being served.
func (exp *Export) Device() *Device { return exp.dev }

// Spec returns the export stage text, e.g. "nbd:listen=127.0.0.1:10809".
func (exp *Export) Spec() string { return exp.spec }

// Stop refuses new clients, finishes or fails requests in flight and
// closes the connections; the device stays open.  An export that belongs
// to a Pipeline stops with it; Stop on it does nothing.  Stopping twice
// is harmless.
func (exp *Export) Stop() error {
	if exp.owned {
		return nil
	}
	e := exp.detach()
	if e == nil {
		return nil
	}
	C.nexus_export_stop(e)
	exp.dev.expMu.Lock()
	delete(exp.dev.exports, exp)
	exp.dev.expMu.Unlock()
	return nil
}

// Close is Stop (io.Closer).
func (exp *Export) Close() error { return exp.Stop() }

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
	if e := C.nexus_pipeline_export(p); e != nil {
		spec := text
		if i := strings.LastIndexByte(text, '|'); i >= 0 {
			spec = strings.TrimSpace(text[i+1:])
		}
		pl.exp = &Export{e: e, dev: pl.dev, spec: spec, owned: true}
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
	pl.ctx.forget(pl)
	return nil
}
