// SPDX-License-Identifier: MIT

package nexus

/*
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <nexus/nexus.h>
#include <nexus/nexus_driver.h>

// Copy the part of a size-stamped event the library filled; the rest
// (fields of a newer binding) reads as zero.
static void nexus_go_event_copy(struct nexus_event_info *dst,
				const struct nexus_event_info *src)
{
	size_t n = src->size < sizeof(*dst) ? src->size : sizeof(*dst);

	memset(dst, 0, sizeof(*dst));
	memcpy(dst, src, n);
}

extern void nexusGoEvent(uintptr_t handle, struct nexus_event_info *ev);
extern void nexusGoEventFree(uintptr_t handle);

// For the tests: an event as the library would deliver it, through the
// exported Go trampolines (C calling Go), with a given size stamp.
static void nexus_go_test_event(uintptr_t handle, size_t size, uint32_t kind,
				uint64_t seq, struct nexus_dev *dev,
				struct nexus_export *exp, const char *object,
				int old_state, int new_state, int error,
				const char *peer, const char *message,
				uint64_t count)
{
	struct nexus_event_info ev = { .size = size, .kind = kind,
		.reason = NEXUS_REASON_IO_ERROR, .seq = seq, .time_ns = 1,
		.dev = dev, .exp = exp, .object = object,
		.old_state = old_state, .new_state = new_state,
		.error = error, .peer = peer, .message = message,
		.count = count };

	nexusGoEvent(handle, &ev);
}

static size_t nexus_go_count_offset(void)
{
	return offsetof(struct nexus_event_info, count);
}

static void nexus_go_test_event_free(uintptr_t handle)
{
	nexusGoEventFree(handle);
}
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// EventKind is the kind of an Event (enum nexus_event_kind).  The library
// may report kinds newer than the constants here: ignore those you do
// not know.
type EventKind uint32

// Event kinds.
const (
	EventDevState         EventKind = C.NEXUS_EVENT_DEV_STATE          // a device changed state
	EventChildAttached    EventKind = C.NEXUS_EVENT_CHILD_ATTACHED     // a child was attached to Device
	EventChildDetached    EventKind = C.NEXUS_EVENT_CHILD_DETACHED     // a child was detached from Device
	EventExportStarted    EventKind = C.NEXUS_EVENT_EXPORT_STARTED     // an export serves clients
	EventExportStopped    EventKind = C.NEXUS_EVENT_EXPORT_STOPPED     // an export stopped
	EventExportDevAdded   EventKind = C.NEXUS_EVENT_EXPORT_DEV_ADDED   // an export serves Device
	EventExportDevRemoved EventKind = C.NEXUS_EVENT_EXPORT_DEV_REMOVED // an export stopped serving Device
	EventConnOpened       EventKind = C.NEXUS_EVENT_CONN_OPENED        // a client connected (Peer)
	EventConnClosed       EventKind = C.NEXUS_EVENT_CONN_CLOSED        // a client connection ended
	EventClientError      EventKind = C.NEXUS_EVENT_CLIENT_ERROR       // a client was sent an error
	EventIOTimeout        EventKind = C.NEXUS_EVENT_IO_TIMEOUT         // an I/O of Device timed out
	EventCopyDone         EventKind = C.NEXUS_EVENT_COPY_DONE          // a copy job finished
	EventLost             EventKind = C.NEXUS_EVENT_LOST               // Count events were dropped
)

// String returns the library's name of the kind, e.g. "conn-opened"
// ("unknown" for a kind it does not know).
func (k EventKind) String() string {
	return C.GoString(C.nexus_event_kind_name(C.uint32_t(k)))
}

// DevState is the state of a device (enum nexus_dev_state).
type DevState int

// Device states.
const (
	DevOnline     DevState = C.NEXUS_DEV_STATE_ONLINE     // serving I/O normally
	DevDegraded   DevState = C.NEXUS_DEV_STATE_DEGRADED   // serving I/O with reduced redundancy
	DevFaulted    DevState = C.NEXUS_DEV_STATE_FAULTED    // failing I/O
	DevOffline    DevState = C.NEXUS_DEV_STATE_OFFLINE    // out of service on purpose
	DevRebuilding DevState = C.NEXUS_DEV_STATE_REBUILDING // being brought back in sync
	DevClosing    DevState = C.NEXUS_DEV_STATE_CLOSING    // being closed
)

// String returns the library's name of the state, e.g. "degraded".
func (s DevState) String() string {
	return C.GoString(C.nexus_dev_state_name(C.int(s)))
}

// Reason says why something happened (enum nexus_reason).
type Reason uint32

// Reasons.
const (
	ReasonNone          Reason = C.NEXUS_REASON_NONE
	ReasonIOError       Reason = C.NEXUS_REASON_IO_ERROR
	ReasonTimeout       Reason = C.NEXUS_REASON_TIMEOUT
	ReasonCantOpen      Reason = C.NEXUS_REASON_CANT_OPEN
	ReasonNoSpace       Reason = C.NEXUS_REASON_NO_SPACE
	ReasonUser          Reason = C.NEXUS_REASON_USER
	ReasonRebuildFailed Reason = C.NEXUS_REASON_REBUILD_FAILED
	ReasonPeerClosed    Reason = C.NEXUS_REASON_PEER_CLOSED
	ReasonProtocol      Reason = C.NEXUS_REASON_PROTOCOL
	ReasonLimit         Reason = C.NEXUS_REASON_LIMIT
	ReasonShutdown      Reason = C.NEXUS_REASON_SHUTDOWN
)

// String returns the library's name of the reason, e.g. "peer-closed".
func (r Reason) String() string {
	return C.GoString(C.nexus_reason_name(C.uint32_t(r)))
}

// Event is one event of a context's event stream (struct
// nexus_event_info), copied: it stays valid.  The events of a context
// arrive in order, each once; Seq counts them from 1, and a gap means
// events were lost (an EventLost event says how many).
type Event struct {
	Kind   EventKind
	Seq    uint64    // sequence number in the context, from 1
	Time   time.Time // when it happened
	Reason Reason    // why
	// Object names the object concerned (device name, export spec), or "".
	Object string
	// Device, Child and Export are the objects concerned, if they were
	// opened or created through this binding (else nil: see Object).
	Device *Device
	Child  *Device
	Export *Export
	// OldState and NewState: EventDevState's change.
	OldState, NewState DevState
	// Errno is the error the event is about, or 0.
	Errno   syscall.Errno
	Peer    string // peer address of a connection, or ""
	Message string // human-readable detail, or ""
	Count   uint64 // EventLost: number of events dropped
}

// String describes the event in one line, e.g.
// "#3 conn-opened nbd:listen=127.0.0.1:10809 peer 127.0.0.1:50312".
func (ev Event) String() string {
	parts := []string{fmt.Sprintf("#%d %s", ev.Seq, ev.Kind)}
	if ev.Object != "" {
		parts = append(parts, ev.Object)
	}
	if ev.Kind == EventDevState {
		parts = append(parts, ev.OldState.String()+" -> "+ev.NewState.String())
	}
	if ev.Peer != "" {
		parts = append(parts, "peer "+ev.Peer)
	}
	if ev.Reason != ReasonNone {
		parts = append(parts, "("+ev.Reason.String()+")")
	}
	if ev.Errno != 0 {
		parts = append(parts, "error: "+ev.Errno.Error())
	}
	if ev.Count != 0 {
		parts = append(parts, fmt.Sprintf("%d lost", ev.Count))
	}
	if ev.Message != "" {
		parts = append(parts, ": "+ev.Message)
	}
	return strings.Join(parts, " ")
}

// Events returns the channel on which the context reports its events, if
// it was created with Options.Events; it is closed when the context has
// been closed and the last event is in it.  Without Options.Events the
// channel returned is closed already.
func (ctx *Context) Events() <-chan Event {
	if ctx.events == nil {
		ch := make(chan Event)
		close(ch)
		return ch
	}
	return ctx.events.ch
}

// eventSink is the Go side of one context's event stream; the C library
// holds it as a cgo.Handle in event_user_data until event_free.
//
// The library's event thread never waits for the reader: closing a
// device waits for a delivery in progress that names it, so a delivery
// blocked on a full channel would deadlock a reader that closes devices,
// or a program that reads no events.  What does not fit in the channel
// waits in order in overflow, moved on by a pump goroutine.
type eventSink struct {
	ctx    *Context
	ch     chan Event
	handle cgo.Handle

	mu       sync.Mutex
	overflow []Event // waiting for room in ch, in order
	pumping  bool    // a pump goroutine runs
	finished bool    // event_free ran: close ch once overflow is empty
	lost     uint64  // dropped since the overflow was full

	finishOnce sync.Once
	freed      atomic.Bool // event_free ran (tests)
}

// overflowMax bounds the events waiting for a reader that fell behind;
// beyond it they are counted and an EventLost (Seq 0) says how many.
const overflowMax = 65536

// liveSinks counts the event sinks whose handle is held (tests).
var liveSinks atomic.Int32

func newEventSink(ctx *Context, buffer int) *eventSink {
	if buffer <= 0 {
		buffer = 256
	}
	s := &eventSink{ctx: ctx, ch: make(chan Event, buffer)}
	s.handle = cgo.NewHandle(s)
	liveSinks.Add(1)
	return s
}

// finish ends the stream: exactly once, from event_free, or from Close
// or a failed NewContext when the library did not call it.  The channel
// is closed once the events waiting in overflow are in it.
func (s *eventSink) finish() {
	s.finishOnce.Do(func() {
		s.mu.Lock()
		s.finished = true
		if !s.pumping {
			close(s.ch)
		}
		s.mu.Unlock()
		s.handle.Delete()
		liveSinks.Add(-1)
	})
}

// send passes e on without ever blocking the caller (the event thread).
func (s *eventSink) send(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pumping {
		select {
		case s.ch <- e:
			return
		default:
		}
	}
	if len(s.overflow) >= overflowMax {
		s.lost++
		return
	}
	if s.lost > 0 {
		s.overflow = append(s.overflow, Event{Kind: EventLost, Count: s.lost, Time: time.Now(),
			Message: "dropped by the Go binding: the reader of Context.Events fell behind"})
		s.lost = 0
	}
	s.overflow = append(s.overflow, e)
	if !s.pumping {
		s.pumping = true
		go s.pump()
	}
}

// pump moves the overflow into the channel, blocking for the reader;
// it closes the channel when the stream has finished and is drained.
func (s *eventSink) pump() {
	for {
		s.mu.Lock()
		if len(s.overflow) == 0 {
			s.pumping = false
			if s.finished {
				close(s.ch)
			}
			s.mu.Unlock()
			return
		}
		e := s.overflow[0]
		s.overflow[0] = Event{}
		s.overflow = s.overflow[1:]
		s.mu.Unlock()
		s.ch <- e
	}
}

func (s *eventSink) deliver(raw *C.struct_nexus_event_info) {
	var ev C.struct_nexus_event_info
	C.nexus_go_event_copy(&ev, raw)
	e := Event{
		Kind:     EventKind(ev.kind),
		Seq:      uint64(ev.seq),
		Time:     time.Unix(0, int64(ev.time_ns)),
		Reason:   Reason(ev.reason),
		OldState: DevState(ev.old_state),
		NewState: DevState(ev.new_state),
		Count:    uint64(ev.count),
	}
	if ev.error < 0 {
		e.Errno = syscall.Errno(-ev.error)
	} else {
		e.Errno = syscall.Errno(ev.error)
	}
	if ev.object != nil {
		e.Object = C.GoString(ev.object)
	}
	if ev.peer != nil {
		e.Peer = C.GoString(ev.peer)
	}
	if ev.message != nil {
		e.Message = C.GoString(ev.message)
	}
	if ev.dev != nil {
		e.Device, _ = s.ctx.objects.lookup(unsafe.Pointer(ev.dev)).(*Device)
	}
	if ev.child != nil {
		e.Child, _ = s.ctx.objects.lookup(unsafe.Pointer(ev.child)).(*Device)
	}
	if ev.exp != nil {
		e.Export, _ = s.ctx.objects.lookup(unsafe.Pointer(ev.exp)).(*Export)
	}
	s.send(e)
}

//export nexusGoEvent
func nexusGoEvent(handle C.uintptr_t, ev *C.struct_nexus_event_info) {
	if s, ok := cgo.Handle(handle).Value().(*eventSink); ok && ev != nil {
		s.deliver(ev)
	}
}

//export nexusGoEventFree
func nexusGoEventFree(handle C.uintptr_t) {
	if s, ok := cgo.Handle(handle).Value().(*eventSink); ok {
		s.freed.Store(true)
		s.finish()
	}
}

// objects maps a context's C handles to their Go wrappers, so that
// events name the *Device and *Export values.  The event about a new
// object is usually delivered before the call that created it has
// returned and registered it: a lookup that misses waits for the
// creations in progress.  A closed wrapper stays registered (events
// about its end come later) among the last retiredMax closed ones, or
// until its address is reused.
type objects struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending int
	m       map[unsafe.Pointer]interface{ closed() bool }
	retired []retiredObj
}

type retiredObj struct {
	p unsafe.Pointer
	v interface{ closed() bool }
}

const retiredMax = 64

func (o *objects) init() {
	o.cond = sync.NewCond(&o.mu)
	o.m = make(map[unsafe.Pointer]interface{ closed() bool })
}

// creating marks a creation in progress; call the function returned
// once the new object is registered (or the creation failed).
func (o *objects) creating() func() {
	o.mu.Lock()
	o.pending++
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		o.pending--
		o.cond.Broadcast()
		o.mu.Unlock()
	}
}

func (o *objects) register(p unsafe.Pointer, v interface{ closed() bool }, replace bool) {
	o.mu.Lock()
	if cur, ok := o.m[p]; replace || !ok || cur.closed() {
		o.m[p] = v
		o.cond.Broadcast()
	}
	o.mu.Unlock()
}

// retire notes that v (at p) was closed; the oldest closed ones are
// forgotten.
func (o *objects) retire(p unsafe.Pointer, v interface{ closed() bool }) {
	o.mu.Lock()
	o.retired = append(o.retired, retiredObj{p, v})
	if len(o.retired) > retiredMax {
		old := o.retired[0]
		o.retired = append(o.retired[:0:0], o.retired[1:]...)
		if o.m[old.p] == old.v {
			delete(o.m, old.p)
		}
	}
	o.mu.Unlock()
}

// find returns the open wrapper of p, or nil (without waiting).
func (o *objects) find(p unsafe.Pointer) interface{} {
	o.mu.Lock()
	v, ok := o.m[p]
	o.mu.Unlock()
	if !ok || v.closed() {
		return nil
	}
	return v
}

// lookupWait is how long an event waits for the creation of the object
// it names: not for long, so that a slow open elsewhere (an NBD
// connect) does not hold up the events of objects never wrapped.
const lookupWait = 2 * time.Second

func (o *objects) lookup(p unsafe.Pointer) interface{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[p]
	if !ok && o.pending > 0 {
		expired := false
		timer := time.AfterFunc(lookupWait, func() {
			o.mu.Lock()
			expired = true
			o.cond.Broadcast()
			o.mu.Unlock()
		})
		for !ok && o.pending > 0 && !expired {
			o.cond.Wait()
			v, ok = o.m[p]
		}
		timer.Stop()
	}
	if !ok {
		return nil
	}
	return v
}

// testEvent hands the event trampoline one event for sink s, as the
// library would (for the tests of the binding's half of the event
// stream).  size 0 means the whole struct; a smaller one is a library
// whose struct ends there.
func (s *eventSink) testEvent(size uintptr, kind EventKind, seq uint64, dev *Device, exp *Export,
	object string, oldState, newState DevState, errno syscall.Errno, peer, message string, count uint64) {
	if size == 0 {
		size = C.sizeof_struct_nexus_event_info
	}
	co, cp, cm := C.CString(object), C.CString(peer), C.CString(message)
	defer C.free(unsafe.Pointer(co))
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cm))
	var d *C.struct_nexus_dev
	var e *C.struct_nexus_export
	if dev != nil {
		d = (*C.struct_nexus_dev)(dev.cptr)
	}
	if exp != nil {
		e = (*C.struct_nexus_export)(exp.cptr)
	}
	C.nexus_go_test_event(C.uintptr_t(s.handle), C.size_t(size), C.uint32_t(kind),
		C.uint64_t(seq), d, e, co, C.int(oldState), C.int(newState), -C.int(errno), cp, cm,
		C.uint64_t(count))
}

// countOffset is offsetof(struct nexus_event_info, count).
var countOffset = uintptr(C.nexus_go_count_offset())

func (s *eventSink) testEventFree() {
	C.nexus_go_test_event_free(C.uintptr_t(s.handle))
}

// testSetState is nexus_dev_set_state() of the driver API, which the
// embedder API has no use for: a device changes state for the tests.
func testSetState(dev *Device, state DevState, reason Reason, msg string) error {
	return dev.use(func(d *C.struct_nexus_dev) error {
		var cm *C.char
		if msg != "" {
			cm = C.CString(msg)
			defer C.free(unsafe.Pointer(cm))
		}
		_, err := call("nexus_dev_set_state", func() int64 {
			return int64(C.nexus_dev_set_state(d, C.int(state), C.uint32_t(reason), cm))
		})
		return err
	})
}
