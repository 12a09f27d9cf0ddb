// SPDX-License-Identifier: MIT

package nexus

// Live device graphs: children attached to and detached from a running
// transform (the "tee" test plugin of tests/graph, built by make
// check), their ownership and their events.

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func teePlugin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("NEXUS_TEST_PLUGIN_DIR")
	p := filepath.Join(dir, "nexus-tee.so")
	if _, err := os.Stat(p); dir == "" || err != nil {
		t.Skipf("the test plugin %s is not built (make check builds tests/graph/nexus-tee.la)", p)
	}
	return p
}

func TestAttachDetach(t *testing.T) {
	plugin := teePlugin(t)
	ctx, err := NewContext(&Options{Reactors: 2, Events: true, EventBuffer: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	if err := ctx.LoadPlugin(plugin); err != nil {
		t.Fatal(err)
	}
	tee := openDev(t, ctx, "mem:size=1M | tee")
	kids, _ := tee.Children()
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	first := kids[0]
	extra := openDev(t, ctx, "mem:size=1M")
	blk := func(b byte) []byte { return bytes.Repeat([]byte{b}, 4096) }
	tee.WriteAt(blk('1'), 0)
	if err := tee.AttachChild(extra); err != nil {
		t.Fatal(err)
	}
	if kids, _ = tee.Children(); len(kids) != 2 || kids[1] != extra {
		t.Fatalf("children after attach %v", kids)
	}
	tee.WriteAt(blk('2'), 0)
	got := make([]byte, 4096)
	if extra.ReadAt(got, 0); !bytes.Equal(got, blk('2')) {
		t.Error("a write did not reach the attached child")
	}
	if err := extra.Close(); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Close of an attached child: %v", err)
	}
	if _, err := extra.ReadAt(got, 0); err != nil {
		t.Fatalf("attached child after a refused Close: %v", err)
	}
	if err := tee.DetachChild(extra); err != nil {
		t.Fatal(err)
	}
	tee.WriteAt(blk('3'), 0)
	if extra.ReadAt(got, 0); !bytes.Equal(got, blk('2')) {
		t.Error("a write reached the detached child")
	}
	if err := tee.DetachChild(extra); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second detach: %v", err)
	}
	if err := extra.Close(); err != nil {
		t.Fatal(err)
	}
	// The original child, detached through its view, is ours to close
	// (after another took its place: the last child stays).
	other := openDev(t, ctx, "mem:size=1M")
	if err := tee.AttachChild(other); err != nil {
		t.Fatal(err)
	}
	if err := tee.DetachChild(first); err != nil {
		t.Fatal(err)
	}
	if tee.ReadAt(got, 0); !bytes.Equal(got, make([]byte, 4096)) {
		t.Error("reads do not go to the new first child")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tee.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ReadAt(got, 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("attached child of a closed device: %v", err)
	}

	c := &collector{t: t, ctx: ctx}
	c.wait(EventChildDetached, "DetachChild", 2)
	type change struct {
		kind  EventKind
		child *Device
	}
	var changes []change
	for _, ev := range c.evs {
		if ev.Kind == EventChildAttached || ev.Kind == EventChildDetached {
			changes = append(changes, change{ev.Kind, ev.Child})
			if ev.Device != tee {
				t.Errorf("event %v: Device %p, want the tee %p", ev, ev.Device, tee)
			}
		}
	}
	want := []change{{EventChildAttached, extra}, {EventChildDetached, extra},
		{EventChildAttached, other}, {EventChildDetached, first}}
	if len(changes) != len(want) {
		t.Fatalf("child events %v, want %v", changes, want)
	}
	for i := range want {
		// a child closed before its event is delivered reads as nil
		if changes[i] != want[i] && (changes[i].kind != want[i].kind || changes[i].child != nil) {
			t.Errorf("child event %d: %v, want %v", i, changes[i], want[i])
		}
	}
}

func TestAttachMisuse(t *testing.T) {
	ctx := newCtx(t)
	a := openDev(t, ctx, "mem:size=1M | fault")
	b := openDev(t, ctx, "mem:size=1M")
	if err := a.AttachChild(b); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("attach to fault: %v", err)
	}
	kids, _ := a.Children()
	if err := a.DetachChild(kids[0]); err == nil {
		t.Error("detached the only child of fault")
	}
	b.Close()
	if err := a.AttachChild(b); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("attach a closed device: %v", err)
	}
}
