// SPDX-License-Identifier: MIT

package nexus

// Real I/O through pipelines, checked by outside tools: qemu-img and
// qemu-io on files, qemu-img and nbdsh over NBD.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	return p
}

// run runs an outside tool with a timeout and returns its stdout.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// nbdsh returns the command that runs nbdsh (libnbd's Python shell).
// nbdsh runs "python3 -m nbd" with the first python3 on PATH, which may
// lack the nbd module (a pyenv one); then use a python3 that has it.
func nbdsh(t *testing.T) []string {
	t.Helper()
	needTool(t, "nbdsh")
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(py, "-c", "import nbd").Run() == nil {
			return []string{py, "-m", "nbd"}
		}
	}
	t.Skip("no python3 with the nbd module (python3-libnbd)")
	return nil
}

func hasDriver(t *testing.T, ctx *Context, name string) bool {
	t.Helper()
	text, err := ctx.Drivers()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && line[0] != ' ' && line[0] != '\t' && f[1] == name {
			return true
		}
	}
	return false
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestFileWrittenReadByQemuImg(t *testing.T) {
	qemuImg := needTool(t, "qemu-img")
	ctx := newCtx(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	data := pattern(1<<20, 7)
	pl, err := ctx.OpenPipeline("file:" + img + ",create=on,size=4M")
	if err != nil {
		t.Fatal(err)
	}
	dev := pl.Device()
	if _, err := dev.WriteAt(data, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteZeroes(3<<20, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}
	pl.Close()

	expect := filepath.Join(dir, "expect.img")
	want := append(append(make([]byte, 1<<20), data...), make([]byte, 2<<20)...)
	os.WriteFile(expect, want, 0o644)
	run(t, qemuImg, "compare", "-f", "raw", "-F", "raw", img, expect)
}

func TestReadWhatQemuIoWrote(t *testing.T) {
	qemuIo := needTool(t, "qemu-io")
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 2<<20), 0o644)
	run(t, qemuIo, "-f", "raw", "-c", "write -P 0xa5 65536 131072", img)
	dev := openDev(t, newCtx(t), "file:"+img)
	got := make([]byte, 131072)
	if _, err := dev.ReadAt(got, 65536); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0xa5}, 131072)) {
		t.Fatal("did not read qemu-io's pattern")
	}
}

// An export started from the API and one built as a pipeline, each read
// back and written by outside NBD clients.
func TestNBDExport(t *testing.T) {
	ctx := newCtx(t)
	if !hasDriver(t, ctx, "nbd") {
		t.Skip("the nbd export is not built into this libnexus")
	}
	qemuImg := needTool(t, "qemu-img")
	nbdshCmd := nbdsh(t)
	dir := t.TempDir()

	// 1. file | nbd as one pipeline; data written through the device
	//    is what qemu-img reads over NBD.
	img := filepath.Join(dir, "a.img")
	port := freePort(t)
	pl, err := ctx.OpenPipeline(fmt.Sprintf("file:%s,create=on,size=4M | nbd:listen=127.0.0.1:%d", img, port))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if pl.Export() == nil || !strings.HasPrefix(pl.Export().Spec(), "nbd:") {
		t.Fatalf("pipeline export %v", pl.Export())
	}
	data := pattern(1<<20, 9)
	if _, err := pl.Device().WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	uri := fmt.Sprintf("nbd://127.0.0.1:%d", port)
	out := filepath.Join(dir, "out.raw")
	run(t, qemuImg, "convert", "-f", "raw", "-O", "raw", uri, out)
	got, _ := os.ReadFile(out)
	if len(got) != 4<<20 || !bytes.Equal(got[:1<<20], data) {
		t.Fatalf("qemu-img read %d bytes, wrong data", len(got))
	}

	// 2. Device.Export: nbdsh writes, the device reads it; the
	//    connection shows up while nbdsh is connected.
	dev := openDev(t, ctx, "mem:size=8M")
	port2 := freePort(t)
	exp, err := dev.Export(fmt.Sprintf("nbd:listen=127.0.0.1:%d", port2))
	if err != nil {
		t.Fatal(err)
	}
	script := `
import sys
h.pwrite(b"\x5a" * 65536, 1048576)
h.flush()
sys.stdout.write("%d\n" % h.get_size())
`
	args := append(nbdshCmd[1:], "-u", fmt.Sprintf("nbd://127.0.0.1:%d", port2), "-c", script)
	sz := strings.TrimSpace(string(run(t, nbdshCmd[0], args...)))
	if sz != "8388608" {
		t.Errorf("nbdsh saw size %q", sz)
	}
	got = make([]byte, 65536)
	if _, err := dev.ReadAt(got, 1<<20); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 65536)) {
		t.Fatalf("device does not hold what nbdsh wrote: %v", err)
	}
	if _, err := exp.Conns(); err != nil {
		t.Errorf("Conns: %v", err)
	}
	if err := exp.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := exp.Conns(); err == nil {
		t.Error("Conns on a stopped export succeeded")
	}
	// The device is still usable after its export stopped.
	if _, err := dev.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
}
