package source_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-updater/lifeboat/source"
)

// The rescue's wiring: the configured list, overridden by the kernel
// command line, tried until one source opens.
func ExampleOpenFirst() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "b.lfb"), []byte("bundle bytes"), 0o644)

	cmdline := "console=ttyS0 lifeboat.url=file:" + filepath.Join(dir, "missing.lfb") + ",file:" + filepath.Join(dir, "b.lfb")
	spec := source.SpecFromCmdline(cmdline, "http://updates.example.com/board.lfb,usb")
	client, err := source.NewClient(source.ClientConfig{
		Clock: source.SystemClock{}, // PID 1 may set the clock forward
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	sources, err := source.ParseSpec(spec, source.Options{Client: client})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, src, err := source.OpenFirst(context.Background(), sources, source.Backoff{Initial: time.Second, Attempts: -1}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	b, _ := io.ReadAll(st)
	fmt.Printf("%s: %q (%d bytes)\n", filepath.Base(src.String()), b, st.Size)
	// Output: b.lfb: "bundle bytes" (12 bytes)
}
