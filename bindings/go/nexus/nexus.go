// SPDX-License-Identifier: MIT

// Package nexus is the Go binding of libnexus, the embeddable C library
// that composes the storage data path like a Unix pipeline:
//
//	file:/var/lib/vol.img | crypt:key-file=/etc/vol.key | nbd:listen=127.0.0.1:10809
//
// Open a device from pipeline text, read and write it by offset (a
// *Device is an io.ReaderAt, io.WriterAt and io.Closer), or open a whole
// pipeline whose last stage serves the data over a protocol:
//
//	dev, err := nexus.Open("file:/var/lib/vol.img")
//	if err != nil { ... }
//	defer dev.Close()
//	buf := make([]byte, 4096)
//	_, err = dev.ReadAt(buf, 0)
//
// Every type is safe for use by many goroutines.  Errors are *Error
// values that unwrap to a syscall.Errno, so errors.Is(err,
// fs.ErrNotExist) and errors.Is(err, syscall.EINVAL) work, and whose text
// is the library's message.
//
// The binding is built with cgo and finds the library with pkg-config
// (libnexus.pc); at run time libnexus.so.0 must be on the loader's path.
package nexus

/*
#cgo pkg-config: libnexus
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <nexus/nexus.h>

extern void nexusGoLog(uintptr_t handle, int level, char *msg);
extern void nexusGoEvent(uintptr_t handle, struct nexus_event_info *ev);
extern void nexusGoEventFree(uintptr_t handle);

static void nexus_go_log(void *user_data, int level, const char *msg)
{
	nexusGoLog((uintptr_t)user_data, level, (char *)msg);
}

static void nexus_go_set_log(struct nexus_ctx_opts *o, uintptr_t handle)
{
	o->log_fn = nexus_go_log;
	o->log_user_data = (void *)handle;
}

static void nexus_go_event(void *user_data, const struct nexus_event_info *ev)
{
	nexusGoEvent((uintptr_t)user_data, (struct nexus_event_info *)ev);
}

static void nexus_go_event_free(void *user_data)
{
	nexusGoEventFree((uintptr_t)user_data);
}

static void nexus_go_set_events(struct nexus_ctx_opts *o, uintptr_t handle)
{
	o->event_fn = nexus_go_event;
	o->event_free = nexus_go_event_free;
	o->event_user_data = (void *)handle;
}
*/
import "C"

import (
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Version returns the version of the loaded library, e.g. "1.0.0".
func Version() string {
	return C.GoString(C.nexus_version())
}

// LogLevel is the severity of a library message, most severe first.
type LogLevel int

// Log levels (enum nexus_log_level).
const (
	LogError LogLevel = 0
	LogWarn  LogLevel = 1
	LogInfo  LogLevel = 2
	LogDebug LogLevel = 3
)

// String returns "error", "warning", "info" or "debug".
func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "error"
	case LogWarn:
		return "warning"
	case LogInfo:
		return "info"
	case LogDebug:
		return "debug"
	}
	return "unknown"
}

// Options configure a Context.  The zero value means library defaults.
type Options struct {
	// Reactors is the number of reactor threads; 0 means one per CPU.
	Reactors int
	// RingEntries is the io_uring size of each reactor; 0: default.
	RingEntries int
	// QueueCapacity is the cross-thread submission queue size of each
	// reactor; 0: default.
	QueueCapacity int
	// PluginPath lists plugin directories, colon-separated, searched
	// before $NEXUS_PLUGIN_PATH.
	PluginPath string
	// BusyPoll makes idle reactors spin instead of sleeping.
	BusyPoll bool
	// PollMicros makes reactors keep polling this many microseconds
	// after work before they sleep: lower latency for a client that
	// waits for each reply, for CPU.  0 means sleep at once.
	PollMicros int
	// MemBudget is the payload bytes all the exports of the context
	// may hold at once; 0 means 1 GiB, else at least 32 MiB.
	MemBudget uint64
	// Log receives the library's messages.  It is called from the
	// reactor threads, possibly concurrently, and must not block.  Nil
	// logs warnings and errors to stderr.
	Log func(level LogLevel, msg string)
	// LogLevel is the most verbose level passed to Log.  0 means the
	// library default (LogInfo with Log set, else LogWarn).
	LogLevel LogLevel
	// Events makes the context report its events (devices changing
	// state, exports starting and stopping, clients connecting...) on
	// the channel of Context.Events.
	Events bool
	// EventBuffer is the capacity of that channel; 0 means 256.  When
	// the reader falls behind and it is full, further events wait in
	// order inside the binding (up to 65536; beyond, they are counted and
	// an EventLost with Seq 0 says how many): the library's event thread
	// never waits for the reader, so the reading goroutine may close
	// devices and exports, and a program may leave the events unread.
	EventBuffer int
}

//export nexusGoLog
func nexusGoLog(handle C.uintptr_t, level C.int, msg *C.char) {
	fn, ok := cgo.Handle(handle).Value().(func(LogLevel, string))
	if ok && fn != nil {
		fn(LogLevel(level), C.GoString(msg))
	}
}

// closer is anything a Context closes when it is closed.
type closer interface{ Close() error }

// A Context owns the library's reactor threads and driver registry.
// Devices, pipelines and exports opened through it are closed with it.
type Context struct {
	mu  sync.RWMutex // held shared by calls, exclusively by Close
	c   *C.struct_nexus_ctx
	log cgo.Handle

	childMu  sync.Mutex
	children map[closer]struct{}

	events  *eventSink // nil without Options.Events
	objects objects    // C handles -> *Device / *Export, for events
}

// NewContext creates a context and starts its reactor threads.  opts
// may be nil.
func NewContext(opts *Options) (*Context, error) {
	var o C.struct_nexus_ctx_opts
	o.size = C.size_t(unsafe.Sizeof(o))
	ctx := &Context{children: make(map[closer]struct{})}
	ctx.objects.init()
	if opts != nil && opts.Events {
		ctx.events = newEventSink(ctx, opts.EventBuffer)
		C.nexus_go_set_events(&o, C.uintptr_t(ctx.events.handle))
	}
	if opts != nil {
		o.reactors = C.uint(opts.Reactors)
		o.ring_entries = C.uint(opts.RingEntries)
		o.queue_capacity = C.uint(opts.QueueCapacity)
		o.log_level = C.int(opts.LogLevel)
		o.poll_us = C.uint(opts.PollMicros)
		o.mem_budget = C.uint64_t(opts.MemBudget)
		if opts.BusyPoll {
			o.flags |= C.NEXUS_CTX_BUSY_POLL
		}
		if opts.PluginPath != "" {
			cs := C.CString(opts.PluginPath)
			defer C.free(unsafe.Pointer(cs))
			o.plugin_path = cs
		}
		if opts.Log != nil {
			ctx.log = cgo.NewHandle(opts.Log)
			C.nexus_go_set_log(&o, C.uintptr_t(ctx.log))
		}
	}
	_, err := call("nexus_ctx_create", func() int64 {
		return int64(C.nexus_ctx_create(&o, &ctx.c))
	})
	if err != nil {
		if ctx.log != 0 {
			ctx.log.Delete()
		}
		if ctx.events != nil {
			ctx.events.finish() // if event_free has not run
		}
		return nil, err
	}
	return ctx, nil
}

// Close closes every export, pipeline and device opened through the
// context, stops its reactors and its event thread and frees it; the
// channel of Events is closed once the last event is in it.  Closing
// twice is harmless.
func (ctx *Context) Close() error {
	ctx.mu.Lock()
	c := ctx.c
	ctx.c = nil
	ctx.mu.Unlock()
	if c == nil {
		return nil
	}
	ctx.childMu.Lock()
	children := ctx.children
	ctx.children = nil
	ctx.childMu.Unlock()
	// Exports first: they hold references on devices.
	for _, rank := range []int{0, 1, 2} {
		for ch := range children {
			switch v := ch.(type) {
			case *Export:
				if rank == 0 {
					v.Close()
				}
			case *Pipeline:
				if rank == 1 {
					v.Close()
				}
			case *Device:
				if rank == 2 && v.Close() != nil {
					v.detach() // still served: nexus_ctx_destroy closes it
				}
			}
		}
	}
	C.nexus_ctx_destroy(c)
	if ctx.log != 0 {
		ctx.log.Delete()
	}
	if ctx.events != nil {
		ctx.events.finish() // if the library did not call event_free
	}
	return nil
}

// use runs f with the context's handle held against a concurrent Close.
func (ctx *Context) use(f func(c *C.struct_nexus_ctx) error) error {
	ctx.mu.RLock()
	defer ctx.mu.RUnlock()
	if ctx.c == nil {
		return errClosed("context")
	}
	return f(ctx.c)
}

func (ctx *Context) adopt(ch closer) {
	ctx.childMu.Lock()
	ctx.children[ch] = struct{}{}
	ctx.childMu.Unlock()
}

func (ctx *Context) forget(ch closer) {
	ctx.childMu.Lock()
	delete(ctx.children, ch)
	ctx.childMu.Unlock()
}

// Reactors returns the number of reactor threads.
func (ctx *Context) Reactors() int {
	n := 0
	ctx.use(func(c *C.struct_nexus_ctx) error {
		n = int(C.nexus_ctx_reactor_count(c))
		return nil
	})
	return n
}

// Open opens a device from pipeline text without an export stage, e.g.
// "file:/var/lib/vol.img" or "mem:size=1G".
func (ctx *Context) Open(pipeline string) (*Device, error) {
	var dev *Device
	err := ctx.use(func(c *C.struct_nexus_ctx) error {
		cs := C.CString(pipeline)
		defer C.free(unsafe.Pointer(cs))
		var d *C.struct_nexus_dev
		done := ctx.objects.creating()
		defer done()
		if _, err := call("nexus_dev_open", func() int64 {
			return int64(C.nexus_dev_open(c, cs, &d))
		}); err != nil {
			return err
		}
		dev = newDevice(ctx, d, false)
		ctx.adopt(dev)
		return nil
	})
	return dev, err
}

// OpenPipeline builds a pipeline: its device stack and, if the last stage
// is an export ("... | nbd:listen=127.0.0.1:10809"), the running export.
func (ctx *Context) OpenPipeline(text string) (*Pipeline, error) {
	var pl *Pipeline
	err := ctx.use(func(c *C.struct_nexus_ctx) error {
		cs := C.CString(text)
		defer C.free(unsafe.Pointer(cs))
		var p *C.struct_nexus_pipeline
		done := ctx.objects.creating()
		defer done()
		if _, err := call("nexus_pipeline_open", func() int64 {
			return int64(C.nexus_pipeline_open(c, cs, &p))
		}); err != nil {
			return err
		}
		pl = newPipeline(ctx, p, text)
		ctx.adopt(pl)
		return nil
	})
	return pl, err
}

// snprintf runs a libnexus call with snprintf semantics, growing the
// buffer until the whole text fits.
func (ctx *Context) snprintf(fn string, f func(c *C.struct_nexus_ctx, buf *C.char, n C.size_t) C.int) (string, error) {
	var out string
	err := ctx.use(func(c *C.struct_nexus_ctx) error {
		size := 4096
		for {
			buf := (*C.char)(C.malloc(C.size_t(size)))
			rc, err := call(fn, func() int64 {
				return int64(f(c, buf, C.size_t(size)))
			})
			if err == nil && int(rc) < size {
				out = C.GoStringN(buf, C.int(rc))
			}
			C.free(unsafe.Pointer(buf))
			if err != nil || int(rc) < size {
				return err
			}
			size = int(rc) + 1
		}
	})
	return out, err
}

// CheckPipeline parses and validates pipeline text without opening
// anything and returns a normalised description of its stages.
func (ctx *Context) CheckPipeline(text string) (string, error) {
	cs := C.CString(text)
	defer C.free(unsafe.Pointer(cs))
	return ctx.snprintf("nexus_pipeline_check", func(c *C.struct_nexus_ctx, buf *C.char, n C.size_t) C.int {
		return C.nexus_pipeline_check(c, cs, buf, n)
	})
}

// Drivers describes every driver of the context: kind, name, options
// with their types, defaults and help.
func (ctx *Context) Drivers() (string, error) {
	return ctx.snprintf("nexus_ctx_describe_drivers", func(c *C.struct_nexus_ctx, buf *C.char, n C.size_t) C.int {
		return C.nexus_ctx_describe_drivers(c, buf, n)
	})
}

// SetSecret registers a secret (an encryption key, a pre-shared key; 1
// to 1024 bytes) under name, for stages that refer to it, e.g.
// "crypt:key-name=NAME" (a raw AES-XTS key: 64 bytes for AES-256-XTS,
// 32 for AES-128-XTS).  The library copies it into locked memory and
// wipes it when removed or when the context closes; it never appears in
// pipeline text or messages.  Errors: EINVAL (bad name or length), EEXIST
// (a secret of that name exists: remove it first).
func (ctx *Context) SetSecret(name string, data []byte) error {
	return ctx.use(func(c *C.struct_nexus_ctx) error {
		cn := C.CString(name)
		defer C.free(unsafe.Pointer(cn))
		var p unsafe.Pointer
		if len(data) > 0 {
			p = unsafe.Pointer(&data[0])
		}
		_, err := call("nexus_ctx_secret_set", func() int64 {
			return int64(C.nexus_ctx_secret_set(c, cn, p, C.size_t(len(data))))
		})
		return err
	})
}

// SetSecretHex registers a secret given as hex digits, as SetSecret;
// EINVAL also for text that is not hex (the message never quotes it).
func (ctx *Context) SetSecretHex(name, hex string) error {
	return ctx.use(func(c *C.struct_nexus_ctx) error {
		cn, ch := C.CString(name), C.CString(hex)
		defer C.free(unsafe.Pointer(cn))
		defer func() {
			C.memset(unsafe.Pointer(ch), 0, C.size_t(len(hex)))
			C.free(unsafe.Pointer(ch))
		}()
		_, err := call("nexus_ctx_secret_set_hex", func() int64 {
			return int64(C.nexus_ctx_secret_set_hex(c, cn, ch))
		})
		return err
	})
}

// RemoveSecret wipes and forgets a secret; devices already open keep
// their copy.  An error wrapping fs.ErrNotExist (ENOENT) if there is no
// such secret.
func (ctx *Context) RemoveSecret(name string) error {
	return ctx.use(func(c *C.struct_nexus_ctx) error {
		cn := C.CString(name)
		defer C.free(unsafe.Pointer(cn))
		_, err := call("nexus_ctx_secret_remove", func() int64 {
			return int64(C.nexus_ctx_secret_remove(c, cn))
		})
		return err
	})
}

// LoadPlugin loads a driver plugin (a shared object) into the context.
func (ctx *Context) LoadPlugin(path string) error {
	return ctx.use(func(c *C.struct_nexus_ctx) error {
		cs := C.CString(path)
		defer C.free(unsafe.Pointer(cs))
		_, err := call("nexus_plugin_load", func() int64 {
			return int64(C.nexus_plugin_load(c, cs))
		})
		return err
	})
}

// Open opens a device in a private Context that is closed with the
// device: the shortest way in.
func Open(pipeline string) (*Device, error) {
	ctx, err := NewContext(nil)
	if err != nil {
		return nil, err
	}
	dev, err := ctx.Open(pipeline)
	if err != nil {
		ctx.Close()
		return nil, err
	}
	dev.ownCtx = true
	return dev, nil
}
