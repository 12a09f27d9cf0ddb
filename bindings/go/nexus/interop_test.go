// SPDX-License-Identifier: MIT

package nexus

// Real I/O through pipelines, checked by outside tools: qemu-img and
// qemu-io on files, qemu-img and nbdsh over NBD.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// toolEnv is the environment for outside tools: without the ASan runtime
// run-tests.sh preloads for a --enable-sanitizers library (it is for the
// test binary, not for qemu-img or nbdsh).
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LD_PRELOAD=") && !strings.HasPrefix(kv, "ASAN_OPTIONS=") {
			env = append(env, kv)
		}
	}
	return env
}

// run runs an outside tool with a timeout and returns its stdout.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, name, args...)
	cmd.Env = toolEnv()
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
		cmd := exec.Command(py, "-c", "import nbd")
		cmd.Env = toolEnv()
		if cmd.Run() == nil {
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

	// A client that stays connected shows up in Conns.
	live := exec.Command(nbdshCmd[0], append(nbdshCmd[1:], "-u", fmt.Sprintf("nbd://127.0.0.1:%d", port2), "-c",
		"import sys\nh.pread(65536, 0)\nprint('up', flush=True)\nsys.stdin.read()\n")...)
	live.Env = toolEnv()
	stdin, _ := live.StdinPipe()
	stdout, _ := live.StdoutPipe()
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 3)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "up\n" {
		t.Fatalf("live client: %q %v", line, err)
	}
	var conns []ConnInfo
	for deadline := time.Now().Add(10 * time.Second); len(conns) == 0 && time.Now().Before(deadline); {
		if conns, err = exp.Conns(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stdin.Close()
	live.Wait()
	if len(conns) != 1 || !strings.HasPrefix(conns[0].Peer, "127.0.0.1") ||
		conns[0].HostID != "" || conns[0].BytesRead < 65536 || conns[0].Requests < 1 {
		t.Errorf("Conns() = %+v", conns)
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

// xtsEncrypt is AES-XTS with tweak = 512-byte sector number
// (aes-xts-plain64), written here from crypto/aes alone as an
// implementation independent of libnexus (IEEE 1619, no ciphertext
// stealing: whole 16-byte blocks).
func xtsEncrypt(key, data []byte) []byte {
	k1, _ := aes.NewCipher(key[:len(key)/2])
	k2, _ := aes.NewCipher(key[len(key)/2:])
	out := make([]byte, len(data))
	for s := 0; s*512 < len(data); s++ {
		var t [16]byte
		for i := 0; i < 8; i++ {
			t[i] = byte(uint64(s) >> (8 * i))
		}
		k2.Encrypt(t[:], t[:])
		for b := s * 512; b < (s+1)*512; b += 16 {
			var x [16]byte
			for i := range x {
				x[i] = data[b+i] ^ t[i]
			}
			k1.Encrypt(x[:], x[:])
			for i := range x {
				out[b+i] = x[i] ^ t[i]
			}
			// t *= alpha in GF(2^128), little-endian
			carry := t[15] >> 7
			for i := 15; i > 0; i-- {
				t[i] = t[i]<<1 | t[i-1]>>7
			}
			t[0] <<= 1
			if carry != 0 {
				t[0] ^= 0x87
			}
		}
	}
	return out
}

// file | crypt | nbd: plaintext through the device and over NBD,
// ciphertext at rest, and the key registered through the API reads it.
func TestFileCryptNBD(t *testing.T) {
	ctx := newCtx(t)
	if !hasDriver(t, ctx, "nbd") || !hasDriver(t, ctx, "crypt") {
		t.Skip("the nbd export or the crypt transform is not built in")
	}
	qemuImg := needTool(t, "qemu-img")
	nbdshCmd := nbdsh(t)
	dir := t.TempDir()
	img, keyFile := filepath.Join(dir, "vol.img"), filepath.Join(dir, "vol.key")
	key := make([]byte, 64)
	for {
		rand.Read(key)
		if !bytes.Equal(key[:32], key[32:]) {
			break
		}
	}
	os.WriteFile(keyFile, key, 0o600)
	port := freePort(t)
	uri := fmt.Sprintf("nbd://127.0.0.1:%d", port)
	pl, err := ctx.OpenPipeline(fmt.Sprintf("file:%s,create=on,size=4M | crypt:key-file=%s | nbd:listen=127.0.0.1:%d",
		img, keyFile, port))
	if err != nil {
		t.Fatal(err)
	}
	dev := pl.Device()
	if info, _ := dev.Info(); info.Driver != "crypt" {
		t.Errorf("top driver %q", info.Driver)
	}
	kids, err := dev.Children()
	if err != nil || len(kids) != 1 {
		t.Fatalf("Children() = %v, %v", kids, err)
	}
	if info, _ := kids[0].Info(); info.Driver != "file" {
		t.Errorf("child driver %q", info.Driver)
	}
	plain := pattern(1<<20, 5)
	if _, err := dev.WriteAtFlags(plain, 0, FUA); err != nil {
		t.Fatal(err)
	}
	args := append(nbdshCmd[1:], "-u", uri, "-c",
		"h.pwrite(b'\\xc3' * 65536, 2097152); h.flush()")
	run(t, nbdshCmd[0], args...)
	got := make([]byte, 65536)
	if _, err := dev.ReadAt(got, 2<<20); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xc3}, 65536)) {
		t.Fatalf("device does not hold what nbdsh wrote: %v", err)
	}
	out := filepath.Join(dir, "plain.raw")
	run(t, qemuImg, "convert", "-f", "raw", "-O", "raw", uri, out)
	all, _ := os.ReadFile(out)
	if len(all) != 4<<20 || !bytes.Equal(all[:1<<20], plain) {
		t.Fatal("qemu-img over NBD does not read the plaintext")
	}
	pl.Close()
	if _, err := kids[0].ReadAt(got, 0); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("child of a closed pipeline: %v", err)
	}

	raw, _ := os.ReadFile(img)
	if !bytes.Equal(raw[:1<<20], xtsEncrypt(key, plain)) {
		t.Fatal("the file does not hold AES-XTS(plain64) of the data")
	}
	if err := ctx.SetSecret("vol", key); err != nil {
		t.Fatal(err)
	}
	if err := ctx.SetSecret("vol", key); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second SetSecret: %v", err)
	}
	d2 := openDev(t, ctx, "file:"+img+" | crypt:key-name=vol")
	got = make([]byte, 1<<20)
	if _, err := d2.ReadAt(got, 0); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("the context secret does not decrypt: %v", err)
	}
	if err := ctx.RemoveSecret("vol"); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.ReadAt(got, 0); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("the open device lost its copy of the key: %v", err)
	}
	if err := ctx.RemoveSecret("vol"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second RemoveSecret: %v", err)
	}
	if _, err := ctx.Open("file:" + img + " | crypt:key-name=vol"); err == nil {
		t.Error("crypt opened with a removed secret")
	}
	if err := ctx.SetSecretHex("bad", "xyz"); !errors.Is(err, syscall.EINVAL) ||
		strings.Contains(err.Error(), "xyz") {
		t.Errorf("bad hex secret: %v", err)
	}
	if err := ctx.SetSecretHex("hex", strings.Repeat("11", 32)+strings.Repeat("22", 32)); err != nil {
		t.Error(err)
	}
}
