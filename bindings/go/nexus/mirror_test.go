// SPDX-License-Identifier: MIT

package nexus

// The mirror from Go: its children listed, one faulted and rebuilt
// partially, the rebuild's progress.

import (
	"errors"
	"io/fs"
	"testing"
	"time"
)

func TestMirrorChildrenAndRebuild(t *testing.T) {
	ctx, err := NewContext(&Options{Reactors: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	dev := openDev(t, ctx, "( mem:size=8M ; mem:size=8M ) | mirror:assume-clean=on,region-size=64K")
	kids, err := dev.MirrorChildren()
	if err != nil || len(kids) != 2 || kids[1].State != DevOnline || kids[1].Index != 1 {
		t.Fatalf("children %+v, %v", kids, err)
	}
	if err := dev.Control("mirror.child.1", "fault"); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteAt(pattern(65536, 7), 1<<20); err != nil {
		t.Fatal(err)
	}
	kids, _ = dev.MirrorChildren()
	if kids[1].State != DevFaulted || kids[1].Reason != ReasonUser ||
		!kids[1].PartialOK || kids[1].DirtyBytes != 65536 {
		t.Fatalf("faulted child %+v", kids[1])
	}
	if err := dev.Control("mirror.child.1", "online"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var rb MirrorRebuild
	for time.Now().Before(deadline) {
		if rb, err = dev.MirrorRebuild(); err != nil || rb.Completed > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || rb.Completed != 1 || rb.Child != -1 || !rb.Partial ||
		rb.BytesTotal != 65536 || rb.LastResult != 0 || rb.ETA != -1 {
		t.Fatalf("rebuild %+v, %v", rb, err)
	}
	if kids, _ = dev.MirrorChildren(); kids[1].State != DevOnline {
		t.Fatalf("rebuilt child %+v", kids[1])
	}
}

func TestMirrorNone(t *testing.T) {
	ctx, err := NewContext(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	dev := openDev(t, ctx, "mem:size=1M")
	if _, err := dev.MirrorChildren(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("MirrorChildren on mem: %v", err)
	}
	if _, err := dev.MirrorRebuild(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("MirrorRebuild on mem: %v", err)
	}
}
