// SPDX-License-Identifier: MIT

package nexus

// The context's event stream on Context.Events: a device whose NBD
// server goes away, devices changing state, exports starting and
// stopping, devices added and removed, and an NBD client (nbdsh)
// connecting and leaving must each produce their event, in order, with
// sequence numbers without gaps.
//
// The library delivers events from lib/core/event.c, and each kind from
// the code that raises it (NEXUS_EVENT_EXPORT_STARTED from the export
// code, ...).  A test that waits for a kind no source file of this tree
// raises, or for any event from a tree without lib/core/event.c, skips
// saying so; once the tree has the code, no event is a failure.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	firstEventTimeout = 5 * time.Second
	eventTimeout      = 20 * time.Second
)

// eventC is lib/core/event.c of the source tree of this binding.
var eventC, _ = filepath.Abs(filepath.Join("..", "..", "..", "lib", "core", "event.c"))

func haveEventC() bool {
	_, err := os.Stat(eventC)
	return err == nil
}

// kindConst is the C name of an event kind: "NEXUS_EVENT_EXPORT_STARTED".
func kindConst(k EventKind) string {
	return "NEXUS_EVENT_" + strings.ToUpper(strings.ReplaceAll(k.String(), "-", "_"))
}

// comments matches C comments.
var comments = regexp.MustCompile(`(?s)/\*.*?\*/|//[^\n]*`)

var (
	raisedMu    sync.Mutex
	raisedCache = map[EventKind]string{}
)

// raisedInTree returns the file of this tree's lib/ that raises events
// of kind k, or "".
func raisedInTree(k EventKind) string {
	raisedMu.Lock()
	defer raisedMu.Unlock()
	if f, ok := raisedCache[k]; ok {
		return f
	}
	f := findRaiser(k)
	raisedCache[k] = f
	return f
}

func findRaiser(k EventKind) string {
	if !haveEventC() {
		return ""
	}
	lib := filepath.Join(filepath.Dir(eventC), "..")
	re := regexp.MustCompile(`\b` + kindConst(k) + `\b`)
	found := ""
	filepath.Walk(lib, func(path string, info os.FileInfo, err error) error {
		if err != nil || found != "" || info.IsDir() || !strings.HasSuffix(path, ".c") ||
			info.Name() == "names.c" || info.Name() == "event.c" {
			return nil
		}
		// not in a comment (the server branch has TODOs naming them)
		if text, err := os.ReadFile(path); err == nil && re.Match(comments.ReplaceAll(text, nil)) {
			found = path
		}
		return nil
	})
	return found
}

func noEvent(t *testing.T, k EventKind, after string, waited time.Duration) {
	t.Helper()
	if src := raisedInTree(k); src != "" {
		t.Fatalf("no %v event within %v after %s, although %s raises it", k, waited, after, src)
	}
	if !haveEventC() {
		t.Skipf("no event within %v after %s, and this tree has no lib/core/event.c: this "+
			"libnexus does not deliver events yet (workstream graph)", waited, after)
	}
	t.Skipf("no %v event after %s: no file of this tree's lib/ raises %s yet (exports and "+
		"connections: workstream server); the test runs once one does", k, after, kindConst(k))
}

type collector struct {
	t   *testing.T
	ctx *Context
	evs []Event
}

// wait reads events until the n-th of kind k (n 0 means 1); after says
// what caused it.
func (c *collector) wait(k EventKind, after string, n int) Event {
	c.t.Helper()
	if n < 1 {
		n = 1
	}
	timeout := eventTimeout
	if raisedInTree(k) == "" {
		timeout = firstEventTimeout // to see whether it comes anyway
	}
	deadline := time.After(timeout)
	for {
		var mine []Event
		for _, ev := range c.evs {
			if ev.Kind == k {
				mine = append(mine, ev)
			}
		}
		if len(mine) >= n {
			return mine[n-1]
		}
		select {
		case ev, ok := <-c.ctx.Events():
			if !ok {
				c.t.Fatalf("the event channel closed while waiting for %v after %s", k, after)
			}
			c.evs = append(c.evs, ev)
		case <-deadline:
			if raisedInTree(k) == "" {
				noEvent(c.t, k, after, timeout)
			}
			c.t.Fatalf("no %v event (#%d) within %v after %s; got %v", k, n, timeout, after, c.evs)
		}
	}
}

func (c *collector) index(k EventKind) int {
	for i, ev := range c.evs {
		if ev.Kind == k {
			return i
		}
	}
	return -1
}

var exportKinds = []EventKind{EventExportStarted, EventExportDevAdded, EventConnOpened,
	EventConnClosed, EventExportDevRemoved, EventExportStopped}

func TestExportEvents(t *testing.T) {
	raised := map[EventKind]bool{}
	var kinds, consts []string
	for _, k := range exportKinds {
		consts = append(consts, kindConst(k))
		if raisedInTree(k) != "" {
			raised[k] = true
			kinds = append(kinds, k.String())
		}
	}
	if len(raised) == 0 {
		t.Skipf("no file of this tree's lib/ raises %s yet (exports and connections: workstream "+
			"server); the test runs once one does", strings.Join(consts, ", "))
	}
	before := liveSinks.Load()
	ctx, err := NewContext(&Options{Reactors: 2, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	needNBD(t, ctx)
	nbdsh(t)
	sink := ctx.events
	c := &collector{t: t, ctx: ctx}
	step := func(k EventKind, after string) {
		if raised[k] {
			c.wait(k, after, 1)
		}
	}

	port := freePort(t)
	spec := fmt.Sprintf("nbd:listen=127.0.0.1:%d", port)
	dev, err := ctx.Open("mem:size=1M")
	if err != nil {
		t.Fatal(err)
	}
	exp, err := ctx.CreateExport(spec)
	if err != nil {
		t.Fatal(err)
	}
	step(EventExportStarted, "CreateExport("+spec+")")
	if err := exp.Add(dev, &ExportDevOptions{Name: "vol"}); err != nil {
		t.Fatal(err)
	}
	step(EventExportDevAdded, "Export.Add")
	// The export listens once the calls return: one client, no probe.
	if out := nbdshRun(t, fmt.Sprintf("nbd://127.0.0.1:%d/vol", port), "print(h.get_size())"); strings.TrimSpace(string(out)) != "1048576" {
		t.Fatalf("nbdsh: %q", out)
	}
	step(EventConnOpened, "an NBD client connected")
	step(EventConnClosed, "an NBD client disconnected")
	if err := exp.Remove(dev); err != nil {
		t.Fatal(err)
	}
	step(EventExportDevRemoved, "Export.Remove")
	exp.Close()
	step(EventExportStopped, "Export.Close")
	dev.Close()
	ctx.Close()
	// The channel is closed once the last event is in it.
	for ev := range ctx.Events() {
		c.evs = append(c.evs, ev)
	}

	for i, ev := range c.evs {
		if ev.Seq != c.evs[0].Seq+uint64(i) {
			t.Errorf("sequence numbers with a gap: %v", c.evs)
			break
		}
		if ev.Kind == EventLost {
			t.Errorf("events lost: %v", ev)
		}
		if d := time.Since(ev.Time); d < -time.Minute || d > 10*time.Minute {
			t.Errorf("event time %v", ev.Time)
		}
	}
	last := -1
	for _, k := range exportKinds {
		if !raised[k] {
			continue
		}
		i := c.index(k)
		if i < last {
			t.Errorf("%v (at %d) out of order (%v): %v", k, i, kinds, c.evs)
		}
		last = i
		ev := c.evs[i]
		if ev.Export != exp {
			t.Errorf("%v: Export %p, want %p", ev, ev.Export, exp)
		}
		switch k {
		case EventExportStarted:
			if !strings.Contains(ev.Object, fmt.Sprint(port)) {
				t.Errorf("export-started %v", ev)
			}
		case EventExportDevAdded, EventExportDevRemoved:
			if ev.Device != dev {
				t.Errorf("%v: Device %p, want %p", ev, ev.Device, dev)
			}
		case EventConnOpened, EventConnClosed:
			n := 0
			for _, e := range c.evs {
				if e.Kind == k {
					n++
				}
			}
			if n != 1 || !strings.HasPrefix(ev.Peer, "127.0.0.1:") {
				t.Errorf("%d %v events, the first %v", n, k, ev)
			}
		}
	}
	if !sink.freed.Load() {
		t.Error("event_free was not called")
	}
	if n := liveSinks.Load(); n != before {
		t.Errorf("%d event sinks left, want %d", n, before)
	}
}

// A device reading from an NBD server (another context's export) that
// goes away: dev-state online -> faulted, then faulted -> closing.
func TestDeviceStateEvents(t *testing.T) {
	before := liveSinks.Load()
	server := newCtx(t)
	needNBD(t, server)
	port := freePort(t)
	pl, err := server.OpenPipeline(fmt.Sprintf("mem:size=1M | nbd:listen=127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	waitListening(t, port)
	ctx, err := NewContext(&Options{Reactors: 1, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	sink := ctx.events
	dev, err := ctx.Open(fmt.Sprintf("nbd:nbd://127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := dev.State(); s != DevOnline {
		t.Fatalf("state %v", s)
	}
	pl.Close()
	c := &collector{t: t, ctx: ctx}
	fault := c.wait(EventDevState, "the NBD server of an nbd: device went away", 1)
	if _, err := dev.ReadAt(make([]byte, 512), 0); err == nil {
		t.Error("read from a device without a server")
	}
	if s, _ := dev.State(); s != DevFaulted {
		t.Errorf("state %v", s)
	}
	dev.Close()
	closing := c.wait(EventDevState, "closing an nbd: device", 2)
	ctx.Close()
	for ev := range ctx.Events() {
		c.evs = append(c.evs, ev)
	}
	if fault.Device != dev || fault.Object != dev.Name() || fault.OldState != DevOnline ||
		fault.NewState != DevFaulted || (fault.Reason != ReasonPeerClosed && fault.Reason != ReasonIOError) ||
		!strings.Contains(fault.Message, fmt.Sprint(port)) || !strings.Contains(fault.String(), "online -> faulted") {
		t.Errorf("fault event %v (device %p, want %p)", fault, fault.Device, dev)
	}
	// A handle closed before its event is delivered reads as NULL (nil).
	if (closing.Device != dev && closing.Device != nil) || closing.Object != dev.Name() ||
		closing.OldState != DevFaulted || closing.NewState != DevClosing {
		t.Errorf("closing event %v", closing)
	}
	for i, ev := range c.evs {
		if ev.Seq != c.evs[0].Seq+uint64(i) {
			t.Errorf("sequence numbers with a gap: %v", c.evs)
			break
		}
	}
	if !sink.freed.Load() {
		t.Error("event_free was not called")
	}
	if n := liveSinks.Load(); n != before {
		t.Errorf("%d event sinks left, want %d", n, before)
	}
}

func TestManyStateChangesInOrder(t *testing.T) {
	ctx, err := NewContext(&Options{Reactors: 2, Events: true, EventBuffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	a, b := openDev(t, ctx, "mem:size=1M"), openDev(t, ctx, "mem:size=2M")
	var states []DevState
	for i := 0; i < 100; i++ {
		states = append(states, DevDegraded, DevRebuilding, DevOnline)
	}
	c := &collector{t: t, ctx: ctx}
	var wg sync.WaitGroup
	wg.Add(2)
	for _, d := range []*Device{a, b} {
		go func(d *Device) { // the reader is slower than the writers
			defer wg.Done()
			for i, st := range states {
				if err := testSetState(d, st, ReasonUser, fmt.Sprint(d == a, i)); err != nil {
					t.Error(err)
				}
			}
		}(d)
	}
	c.wait(EventDevState, "nexus_dev_set_state", 2*len(states))
	wg.Wait()
	if err := testSetState(a, 99, 0, ""); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("state 99: %v", err)
	}
	for _, d := range []*Device{a, b} {
		var mine []Event
		for _, ev := range c.evs {
			if ev.Device == d || (ev.Device == nil && ev.Object == d.Name()) {
				mine = append(mine, ev)
			}
		}
		if len(mine) != len(states) {
			t.Fatalf("%d events of %v, want %d", len(mine), d, len(states))
		}
		for i, ev := range mine {
			if ev.NewState != states[i] || (i > 0 && ev.OldState != states[i-1]) ||
				ev.Message != fmt.Sprint(d == a, i) {
				t.Fatalf("event %d of %v: %v", i, d, ev)
			}
		}
	}
	for i, ev := range c.evs {
		if ev.Seq != c.evs[0].Seq+uint64(i) || ev.Kind == EventLost {
			t.Fatalf("event %d: %v", i, ev)
		}
	}
}

func TestEventsWithoutOption(t *testing.T) {
	ctx := newCtx(t)
	select {
	case _, ok := <-ctx.Events():
		if ok {
			t.Error("an event without Options.Events")
		}
	case <-time.After(time.Second):
		t.Error("Events() without Options.Events is not closed")
	}
}

func TestEventSinkReleased(t *testing.T) {
	before := liveSinks.Load()
	if _, err := NewContext(&Options{Reactors: 100000, Events: true}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("bad options: %v", err)
	}
	if n := liveSinks.Load(); n != before {
		t.Errorf("failed NewContext left %d sinks, want %d", n, before)
	}
	ctx, err := NewContext(&Options{Reactors: 1, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := liveSinks.Load(); n != before+1 {
		t.Errorf("%d sinks, want %d", n, before+1)
	}
	ctx.Close()
	ctx.Close()
	if n := liveSinks.Load(); n != before {
		t.Errorf("closed context left %d sinks, want %d", n, before)
	}
	if _, ok := <-ctx.Events(); ok {
		t.Error("event channel open after Close")
	}
}

// The binding's half on its own, whatever the library delivers: events
// handed to the exported trampolines from C, as the library does, come
// out of the channel naming the Go objects; event_free closes it.  The
// sink is one of its own, not the context's (whose handle the library
// holds and frees).
func TestEventDeliveryPath(t *testing.T) {
	ctx := newCtx(t)
	dev := openDev(t, ctx, "mem:size=1M")
	pl, err := ctx.OpenPipeline("mem:size=1M")
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	before := liveSinks.Load()
	s := newEventSink(ctx, 1)
	s.testEvent(0, EventDevState, 7, dev, nil, "mem:size=1M", DevOnline, DevFaulted, syscall.EIO,
		"", "a read failed", 0)
	ev := <-s.ch
	if ev.Kind != EventDevState || ev.Kind.String() != "dev-state" || ev.Seq != 7 || ev.Device != dev ||
		ev.Export != nil || ev.Child != nil || ev.OldState != DevOnline || ev.NewState != DevFaulted ||
		ev.Errno != syscall.EIO || ev.Reason != ReasonIOError || ev.Reason.String() != "io-error" ||
		ev.Object != "mem:size=1M" || ev.Message != "a read failed" || ev.Peer != "" || ev.Time.UnixNano() != 1 {
		t.Errorf("delivered %#v", ev)
	}
	if str := ev.String(); !strings.Contains(str, "online -> faulted") || !strings.Contains(str, "input/output error") {
		t.Errorf("String() = %q", str)
	}
	// The pipeline's device, and a kind newer than the binding from a
	// library whose struct ends before count: the number is kept, the
	// missing field reads 0.
	s.testEvent(countOffset, EventKind(99), 8, pl.Device(), nil, "", 0, 0, 0, "127.0.0.1:1", "", 12345)
	if ev := <-s.ch; ev.Kind != 99 || ev.Kind.String() != "unknown" || ev.Count != 0 ||
		ev.Peer != "127.0.0.1:1" || ev.Device != pl.Device() {
		t.Errorf("delivered %#v", ev)
	}

	// A reader that falls behind never blocks the event thread: what
	// does not fit in the channel (of 1) waits in order.
	for seq := uint64(9); seq < 109; seq++ {
		s.testEvent(0, EventDevState, seq, nil, nil, "", 0, 0, 0, "", "", 0)
	}
	s.testEventFree()
	if !s.freed.Load() {
		t.Error("event_free did not reach the sink")
	}
	var rest []Event
	for ev := range s.ch { // closed by event_free, once drained
		rest = append(rest, ev)
	}
	if len(rest) != 100 {
		t.Fatalf("%d events came out, want 100", len(rest))
	}
	for i, ev := range rest {
		if ev.Seq != uint64(9+i) {
			t.Fatalf("event %d out of order: %v", i, ev)
		}
	}
	s.finish() // as Close would: nothing more
	if n := liveSinks.Load(); n != before {
		t.Errorf("%d sinks, want %d", n, before)
	}
}

// Contexts closed while events flow and nobody reads them: Close never
// hangs on the full channel, the events wait in order, and the channel
// closes once they are read.
func TestEventsCloseWhileBusy(t *testing.T) {
	for round := 0; round < 10; round++ {
		ctx, err := NewContext(&Options{Reactors: 1, Events: true, EventBuffer: 1})
		if err != nil {
			t.Fatal(err)
		}
		dev, err := ctx.Open("mem:size=1M")
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			states := []DevState{DevDegraded, DevOnline}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if testSetState(dev, states[i%2], ReasonUser, "") != nil {
					return // closed
				}
			}
		}()
		<-ctx.Events() // events flow; then nobody reads
		time.Sleep(time.Duration(round) * time.Millisecond)
		if round%2 == 0 {
			// Closing a device waits for a delivery that names it: that
			// delivery must not be stuck on the full channel.
			closed := make(chan struct{})
			go func() { dev.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatal("Device.Close hangs with a full event channel")
			}
		}
		done := make(chan struct{})
		go func() { ctx.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("Close hangs with a full event channel")
		}
		close(stop)
		wg.Wait()
		var last uint64
		for ev := range ctx.Events() {
			if ev.Seq <= last {
				t.Fatalf("round %d: %v after #%d", round, ev, last)
			}
			last = ev.Seq
		}
	}
}
