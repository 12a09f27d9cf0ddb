// SPDX-License-Identifier: MIT

package nexus

// Exports made from nothing (Context.CreateExport) serving devices added
// and removed while they run; the reference an export holds on a device.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needNBD(t *testing.T, ctx *Context) {
	t.Helper()
	if !hasDriver(t, ctx, "nbd") {
		t.Skip("the nbd export is not built into this libnexus")
	}
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nbdshRun(t *testing.T, uri, script string) []byte {
	t.Helper()
	cmd := nbdsh(t)
	return run(t, cmd[0], append(cmd[1:], "-u", uri, "-c", script)...)
}

func TestExportHoldsTheDevice(t *testing.T) {
	ctx := newCtx(t)
	needNBD(t, ctx)
	nbdsh(t)
	port := freePort(t)
	spec := fmt.Sprintf("nbd:listen=127.0.0.1:%d", port)
	dev, err := ctx.Open("mem:size=2M")
	if err != nil {
		t.Fatal(err)
	}
	exp, err := ctx.CreateExport(spec)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := exp.DevCount(); n != 0 || err != nil || exp.Device() != nil || exp.Spec() != spec {
		t.Fatalf("new export: %d devices, %v", n, err)
	}
	if err := exp.Add(dev, &ExportDevOptions{Name: "vol"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := exp.DevCount(); n != 1 || exp.Device() != dev || len(exp.Devices()) != 1 {
		t.Fatalf("DevCount() = %d, Devices() = %v", n, exp.Devices())
	}
	waitListening(t, port)
	data := bytes.Repeat([]byte{0x42}, 4096)
	if _, err := dev.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	got := nbdshRun(t, fmt.Sprintf("nbd://127.0.0.1:%d/vol", port),
		"import sys; sys.stdout.buffer.write(h.pread(4096, 0))")
	if !bytes.Equal(got, data) {
		t.Fatal("nbdsh did not read the device")
	}

	// Served: Close is refused with the library's EBUSY naming the
	// export, and the device stays usable.
	err = dev.Close()
	var ne *Error
	if !errors.Is(err, syscall.EBUSY) || !errors.As(err, &ne) || ne.Func != "nexus_dev_close" ||
		!strings.Contains(ne.Msg, spec) {
		t.Fatalf("Close of a served device: %v", err)
	}
	buf := make([]byte, 4096)
	if _, err := dev.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("device after a refused Close: %v", err)
	}
	if err := exp.Add(dev, nil); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second Add: %v", err)
	}
	if err := exp.Remove(dev); err != nil {
		t.Fatal(err)
	}
	if n, _ := exp.DevCount(); n != 0 || exp.Device() != nil {
		t.Errorf("after Remove: %d devices", n)
	}
	if err := exp.Remove(dev); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := exp.Close(); err != nil || exp.Close() != nil {
		t.Fatal(err)
	}
	if _, err := exp.DevCount(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("DevCount of a closed export: %v", err)
	}
}

func TestExportCloseReleasesDevices(t *testing.T) {
	ctx := newCtx(t)
	needNBD(t, ctx)
	dev := openDev(t, ctx, "mem:size=1M")
	exp, err := ctx.CreateExport(fmt.Sprintf("nbd:listen=127.0.0.1:%d", freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Add(dev, &ExportDevOptions{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Close of a served device: %v", err)
	}
	exp.Close()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSeveralDevicesOnOneExport(t *testing.T) {
	ctx := newCtx(t)
	needNBD(t, ctx)
	nbdsh(t)
	port := freePort(t)
	a, b := openDev(t, ctx, "mem:size=1M"), openDev(t, ctx, "mem:size=2M")
	exp, err := ctx.CreateExport(fmt.Sprintf("nbd:listen=127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	if err := exp.Add(a, &ExportDevOptions{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := exp.Add(b, &ExportDevOptions{Name: "b"}); err != nil {
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Fatal(err)
		}
		t.Skipf("this NBD export serves one device (%v)", err)
	}
	waitListening(t, port)
	for name, size := range map[string]int{"a": 1 << 20, "b": 2 << 20} {
		out := nbdshRun(t, fmt.Sprintf("nbd://127.0.0.1:%d/%s", port, name), "print(h.get_size())")
		if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n != size {
			t.Errorf("%s: size %q", name, out)
		}
	}
	if err := exp.Remove(a); err != nil || len(exp.Devices()) != 1 || exp.Device() != b {
		t.Errorf("Remove(a): %v, %v", err, exp.Devices())
	}
}

func TestContextCloseWithServedDevices(t *testing.T) {
	ctx, err := NewContext(&Options{Reactors: 1})
	if err != nil {
		t.Fatal(err)
	}
	needNBD(t, ctx)
	dev, _ := ctx.Open("mem:size=1M")
	exp, err := ctx.CreateExport(fmt.Sprintf("nbd:listen=127.0.0.1:%d", freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	exp.Add(dev, nil)
	ctx.Close()
	if _, err := dev.ReadAt(make([]byte, 512), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("device of a closed context: %v", err)
	}
	if _, err := exp.Conns(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("export of a closed context: %v", err)
	}
}

func TestDeviceExportStopsWithTheDevice(t *testing.T) {
	ctx := newCtx(t)
	needNBD(t, ctx)
	dev, _ := ctx.Open("mem:size=1M")
	exp, err := dev.Export(fmt.Sprintf("nbd:listen=127.0.0.1:%d", freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	if exp.Device() != dev {
		t.Error("Export().Device()")
	}
	if err := dev.Close(); err != nil { // its own export stops first
		t.Fatal(err)
	}
	if _, err := exp.Conns(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("export of a closed device: %v", err)
	}
}

func TestExportMisuse(t *testing.T) {
	ctx := newCtx(t)
	needNBD(t, ctx)
	if _, err := ctx.CreateExport("mem:size=1M"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a device stage as export: %v", err)
	}
	if _, err := ctx.CreateExport("nbd:bogus=1"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown option: %v", err)
	}
	exp, err := ctx.CreateExport(fmt.Sprintf("nbd:listen=127.0.0.1:%d", freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	other := newCtx(t)
	foreign := openDev(t, other, "mem:size=1M")
	if err := exp.Add(foreign, nil); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("device of another context: %v", err)
	}
	closed, _ := ctx.Open("mem:size=1M")
	closed.Close()
	if err := exp.Add(closed, nil); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("closed device: %v", err)
	}
}
