// SPDX-License-Identifier: MIT

package nexus_test

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/libnexus/libnexus/bindings/go/nexus"
)

func Example() {
	dev, err := nexus.Open("mem:size=64M")
	if err != nil {
		panic(err)
	}
	defer dev.Close()

	block := make([]byte, 4096)
	copy(block, "hello")
	dev.WriteAt(block, 0)

	got := make([]byte, 4096)
	dev.ReadAt(got, 0)
	st, _ := dev.Stats()
	fmt.Printf("%s: %q, %d write(s)\n", dev.Name(), got[:5], st.PerOp[nexus.OpWrite].Ops)
	// Output: mem:size=64M: "hello", 1 write(s)
}

func ExampleError() {
	_, err := nexus.Open("file:/nonexistent/disk.img")
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	var ne *nexus.Error
	if errors.As(err, &ne) {
		fmt.Println(ne.Errno)
	}
	// Output:
	// true
	// no such file or directory
}

func ExampleContext_OpenPipeline() {
	ctx, err := nexus.NewContext(nil)
	if err != nil {
		panic(err)
	}
	defer ctx.Close()
	// With an export stage ("... | nbd:listen=127.0.0.1:10809") the
	// pipeline serves the device until it is closed.
	pl, err := ctx.OpenPipeline("mem:size=1M")
	if err != nil {
		panic(err)
	}
	defer pl.Close()
	fmt.Println(pl.Device().Size(), pl.Export() == nil)
	// Output: 1048576 true
}
