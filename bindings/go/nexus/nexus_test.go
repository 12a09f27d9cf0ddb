// SPDX-License-Identifier: MIT

package nexus

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func newCtx(t *testing.T) *Context {
	t.Helper()
	ctx, err := NewContext(&Options{Reactors: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx.Close() })
	return ctx
}

func openDev(t *testing.T, ctx *Context, pipeline string) *Device {
	t.Helper()
	dev, err := ctx.Open(pipeline)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7) + seed + byte(i>>9)
	}
	return p
}

func TestVersion(t *testing.T) {
	if v := Version(); v == "" || v[0] < '0' || v[0] > '9' {
		t.Fatalf("Version() = %q", v)
	}
}

func TestInfo(t *testing.T) {
	ctx := newCtx(t)
	if n := ctx.Reactors(); n != 2 {
		t.Errorf("Reactors() = %d, want 2", n)
	}
	dev := openDev(t, ctx, "mem:size=4M")
	info, err := dev.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 4<<20 || dev.Size() != 4<<20 || info.LogicalBlockSize != 512 ||
		info.Driver != "mem" || info.Name != "mem:size=4M" || dev.Name() != info.Name {
		t.Errorf("unexpected info %+v", info)
	}
	if !info.Supports(OpRead) || !info.Supports(OpWriteZeroes) || info.ReadOnly() {
		t.Errorf("unexpected ops/flags %+v", info)
	}
	if info.MaxIOSize < 4096 {
		t.Errorf("MaxIOSize %d", info.MaxIOSize)
	}
}

func TestReadWrite(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=4M")
	data := pattern(8192, 1)
	if n, err := dev.WriteAt(data, 4096); n != len(data) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	got := make([]byte, 8192)
	if n, err := dev.ReadAt(got, 4096); n != len(got) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if _, err := dev.WriteAtFlags(data[:512], 0, FUA); err != nil {
		t.Fatal(err)
	}
	// io.ReaderAt users: a SectionReader over the whole device, read
	// in block-aligned pieces.
	var all bytes.Buffer
	sr := io.NewSectionReader(dev, 0, dev.Size())
	n, err := io.CopyBuffer(struct{ io.Writer }{&all}, sr, make([]byte, 65536))
	if err != nil || n != 4<<20 || !bytes.Equal(all.Bytes()[4096:4096+8192], data) {
		t.Fatalf("CopyBuffer: %d bytes, %v", n, err)
	}
}

func TestReadAtEOF(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=1M")
	buf := make([]byte, 8192)
	n, err := dev.ReadAt(buf, 1<<20-4096)
	if n != 4096 || err != io.EOF {
		t.Errorf("ReadAt across the end = %d, %v; want 4096, EOF", n, err)
	}
	if n, err := dev.ReadAt(buf, 1<<20); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := dev.ReadAt(nil, 0); n != 0 || err != nil {
		t.Errorf("empty ReadAt = %d, %v", n, err)
	}
	if _, err := dev.ReadAt(buf, -512); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("negative offset: %v", err)
	}
}

func TestLargeIOIsSplit(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=48M")
	info, _ := dev.Info()
	big := bytes.Repeat(pattern(1<<20, 3), 40)
	if len(big) <= info.MaxIOSize {
		t.Skip("max_io_size is larger than the test buffer")
	}
	if n, err := dev.WriteAt(big, 0); n != len(big) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	got := make([]byte, len(big))
	if n, err := dev.ReadAt(got, 0); n != len(got) || err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
}

func TestFlushTrimZeroes(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=1M")
	ff := bytes.Repeat([]byte{0xff}, 8192)
	dev.WriteAt(ff, 0)
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteZeroes(0, 4096, FUA|NoUnmap); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	dev.ReadAt(got, 0)
	if !bytes.Equal(got[:4096], make([]byte, 4096)) || !bytes.Equal(got[4096:], ff[:4096]) {
		t.Fatal("WriteZeroes did not zero exactly its range")
	}
	if err := dev.Trim(4096, 4096); err != nil {
		t.Fatal(err)
	}
	info, _ := dev.Info()
	if info.Flags&TrimZeroes != 0 {
		dev.ReadAt(got, 0)
		if !bytes.Equal(got, make([]byte, 8192)) {
			t.Fatal("trimmed range of a TrimZeroes device is not zero")
		}
	}
}

func TestBlockStatus(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=1M")
	dev.WriteAt(pattern(65536, 1), 0)
	ext, err := dev.BlockStatus(0, dev.Size(), 64)
	if err != nil || len(ext) == 0 {
		t.Fatal(ext, err)
	}
	if ext[0].Offset != 0 || ext[0].Zero || ext[0].Hole {
		t.Errorf("first extent %+v", ext[0])
	}
	for i := 1; i < len(ext); i++ {
		if ext[i-1].Offset+ext[i-1].Length != ext[i].Offset {
			t.Errorf("extents not contiguous: %+v", ext)
		}
	}
}

func TestStats(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=1M")
	buf := make([]byte, 4096)
	dev.WriteAt(buf, 0)
	dev.ReadAt(buf, 0)
	dev.ReadAt(buf[:512], 0)
	dev.Flush()
	st, err := dev.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.PerOp[OpWrite].Ops != 1 || st.PerOp[OpRead].Ops != 2 || st.PerOp[OpFlush].Ops != 1 ||
		st.Ops != 4 || st.Errors != 0 || st.BytesRead != 4608 || st.BytesWritten != 4096 ||
		st.PerOp[OpRead].Bytes != 4608 || st.PerOp[OpWrite].Bytes != 4096 {
		t.Errorf("unexpected stats %+v", st)
	}
	if len(st.PerOp) <= int(OpBlockStatus) {
		t.Errorf("PerOp has %d operations", len(st.PerOp))
	}
	if ws, err := dev.OpStats(OpWrite); err != nil || ws != st.PerOp[OpWrite] {
		t.Errorf("OpStats(OpWrite) = %+v, %v", ws, err)
	}
	if _, err := dev.OpStats(Op(1000)); !errors.Is(err, syscall.ERANGE) {
		t.Errorf("OpStats(1000): %v", err)
	}
	if s, err := dev.State(); err != nil || s != DevOnline || s.String() != "online" {
		t.Errorf("State() = %v, %v", s, err)
	}
	if st.Percentile(99) < st.Percentile(50) || st.Percentile(50) <= 0 {
		t.Errorf("percentiles p50 %v p99 %v", st.Percentile(50), st.Percentile(99))
	}
	if LatencyBucketFloor(0) != 0 || LatencyBucketFloor(10) <= 0 {
		t.Error("LatencyBucketFloor")
	}
	if OpWriteZeroes.String() != "write-zeroes" {
		t.Error(OpWriteZeroes.String())
	}
}

func TestErrors(t *testing.T) {
	ctx := newCtx(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.img")

	_, err := ctx.Open("file:" + missing)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("missing file: %v", err)
	}
	var ne *Error
	if !errors.As(err, &ne) || ne.Errno != syscall.ENOENT || ne.Func != "nexus_dev_open" ||
		!strings.Contains(ne.Msg, missing) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error detail: %#v", err)
	}
	if _, err := ctx.Open("file:" + dir); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("directory: %v", err)
	}
	if _, err := ctx.Open("mem:size=1M | | mem:size=1M"); !errors.Is(err, syscall.EINVAL) ||
		!strings.Contains(err.Error(), "column") {
		t.Errorf("syntax error: %v", err)
	}
	if _, err := ctx.CheckPipeline("mem:bogus=1"); !errors.Is(err, syscall.EINVAL) ||
		!strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown option: %v", err)
	}
	if d, err := ctx.CheckPipeline("mem:size=1M"); err != nil || !strings.Contains(d, "mem") {
		t.Errorf("CheckPipeline = %q, %v", d, err)
	}

	dev := openDev(t, ctx, "mem:size=1M")
	_, err = dev.ReadAt(make([]byte, 100), 0)
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "align") {
		t.Errorf("misaligned: %v", err)
	}
	if _, err := dev.WriteAt(make([]byte, 4096), 1<<20); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("past the end: %v", err)
	}

	ro := filepath.Join(dir, "ro.img")
	os.WriteFile(ro, make([]byte, 65536), 0o644)
	rdev := openDev(t, ctx, "file:"+ro+",readonly=on")
	if _, err := rdev.WriteAt(make([]byte, 512), 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("read-only: %v", err)
	}

	if _, err := NewContext(&Options{Reactors: 100000}); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bad options: %v", err)
	}
}

func TestClosed(t *testing.T) {
	ctx, err := NewContext(&Options{Reactors: 1})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := ctx.Open("mem:size=1M")
	pl, err := ctx.OpenPipeline("mem:size=1M")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Export() != nil {
		t.Error("pipeline without an export stage has an export")
	}
	pl.Device().Close() // owned by the pipeline: no effect
	if _, err := pl.Device().ReadAt(make([]byte, 512), 0); err != nil {
		t.Error(err)
	}
	ctx.Close()
	ctx.Close()
	if _, err := d1.ReadAt(make([]byte, 512), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("device of a closed context: %v", err)
	}
	if _, err := pl.Device().WriteAt(make([]byte, 512), 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("pipeline device of a closed context: %v", err)
	}
	if _, err := ctx.Open("mem:size=1M"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("closed context: %v", err)
	}
	if d1.Close() != nil || pl.Close() != nil {
		t.Error("second close failed")
	}
}

func TestOpen(t *testing.T) {
	dev, err := Open("mem:size=1M")
	if err != nil {
		t.Fatal(err)
	}
	ctx := dev.Context()
	if _, err := dev.WriteAt(make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if _, err := ctx.Open("mem:size=1M"); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("private context still open: %v", err)
	}
	if _, err := Open("file:/nonexistent/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing: %v", err)
	}
}

func TestLog(t *testing.T) {
	var mu sync.Mutex
	var msgs []string
	ctx, err := NewContext(&Options{Reactors: 1, LogLevel: LogDebug,
		Log: func(l LogLevel, m string) {
			mu.Lock()
			msgs = append(msgs, l.String()+": "+m)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ctx.Open("mem:size=3M")
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	ctx.Close()
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, m := range msgs {
		found = found || strings.Contains(m, "mem:size=3M")
	}
	if !found {
		t.Errorf("no log message names the device: %q", msgs)
	}
}

func TestDrivers(t *testing.T) {
	d, err := newCtx(t).Drivers()
	if err != nil || !strings.Contains(d, "mem") || !strings.Contains(d, "file") {
		t.Fatalf("Drivers() = %q, %v", d, err)
	}
}

// Many goroutines share one device; others close it in the middle.  Run
// with -race.
func TestConcurrent(t *testing.T) {
	ctx := newCtx(t)
	dev := openDev(t, ctx, "mem:size=16M")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			data := pattern(65536, byte(g))
			got := make([]byte, 65536)
			for k := 0; k < 20; k++ {
				off := int64(g*20+k) * 65536
				if _, err := dev.WriteAt(data, off); err != nil {
					errs <- err
					return
				}
				if _, err := dev.ReadAt(got, off); err != nil || !bytes.Equal(got, data) {
					errs <- errors.New("read back differs")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st, _ := dev.OpStats(OpWrite); st.Ops != 160 {
		t.Errorf("writes = %d", st.Ops)
	}

	// Close while goroutines do I/O: they see fs.ErrClosed, nothing else.
	dev2 := openDev(t, ctx, "mem:size=1M")
	var wg2 sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			buf := make([]byte, 4096)
			for {
				if _, err := dev2.ReadAt(buf, 0); err != nil {
					if !errors.Is(err, fs.ErrClosed) {
						t.Errorf("unexpected error: %v", err)
					}
					return
				}
			}
		}()
	}
	dev2.Close()
	wg2.Wait()
}

func TestFaultControlChildren(t *testing.T) {
	dev := openDev(t, newCtx(t), "mem:size=1M | fault:errno=ENOSPC,ops=write")
	kids, err := dev.Children()
	if err != nil || len(kids) != 1 {
		t.Fatalf("Children() = %v, %v", kids, err)
	}
	buf := bytes.Repeat([]byte{'x'}, 512)
	if _, err := dev.WriteAt(buf, 0); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fault not injected: %v", err)
	}
	if st, err := dev.OpStats(OpWrite); err != nil || st.Errors != 1 {
		t.Errorf("write errors %+v, %v", st, err)
	}
	if err := dev.Control("fault.enable", "off"); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 512)
	kids[0].Close() // belongs to the stack: no effect
	if _, err := kids[0].ReadAt(got, 0); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("child read: %v", err)
	}
	if err := dev.Control("fault.nosuchsetting", "1"); err == nil ||
		!strings.Contains(err.Error(), "nosuchsetting") {
		t.Errorf("unknown setting: %v", err)
	}
	dev.Close()
	if _, err := kids[0].ReadAt(got, 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("child of a closed device: %v", err)
	}
}
