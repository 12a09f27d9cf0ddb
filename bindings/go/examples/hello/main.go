// SPDX-License-Identifier: MIT

// hello: the smallest useful libnexus embedding, in Go.  Opens a
// pipeline, writes a block, reads it back, prints the device and its
// counters (the same as examples/hello.c).
//
//	go run ./examples/hello 'mem:size=64M'
package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/libnexus/libnexus/bindings/go/nexus"
)

func main() {
	pipeline := "mem:size=64M"
	if len(os.Args) > 1 {
		pipeline = os.Args[1]
	}
	dev, err := nexus.Open(pipeline)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	defer dev.Close()

	info, _ := dev.Info()
	fmt.Printf("%s: %d bytes, block size %d\n", info.Name, info.Size, info.LogicalBlockSize)

	out := make([]byte, 4096)
	copy(out, "hello from libnexus "+nexus.Version())
	in := make([]byte, 4096)
	if _, err := dev.WriteAtFlags(out, 0, nexus.FUA); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	if _, err := dev.ReadAt(in, 0); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	ok := bytes.Equal(in, out)
	status := "ok"
	if !ok {
		status = "MISMATCH"
	}
	fmt.Printf("read back: %q (%s)\n", string(bytes.TrimRight(in, "\x00")), status)

	st, _ := dev.Stats()
	fmt.Printf("ops: %d reads, %d writes\n", st.PerOp[nexus.OpRead].Ops, st.PerOp[nexus.OpWrite].Ops)
	if !ok {
		dev.Close()
		os.Exit(1)
	}
}
