package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

const mib = 1 << 20

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opt  handlers.Options
		want error
	}{
		{"missing", filepath.Join(dir, "nope"), handlers.Options{}, handlers.ErrNotFound},
		{"directory", dir, handlers.Options{}, handlers.ErrUnsupported},
		{"character device", "/dev/null", handlers.Options{}, handlers.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := handlers.Open(tt.path, tt.opt)
			if !errors.Is(err, tt.want) {
				t.Errorf("Open(%s) = %v, want %v", tt.path, err, tt.want)
			}
			if d != nil {
				d.Close()
			}
		})
	}
}

// fill reads the whole target.
func content(t *testing.T, tg handlers.Target) []byte {
	t.Helper()
	b := make([]byte, tg.Size())
	if n, err := tg.ReadAt(b, 0); n != len(b) {
		t.Fatalf("ReadAt(all of %v) = %d, %v", tg, n, err)
	}
	return b
}

func testTarget(t *testing.T, path string) {
	d, err := handlers.Open(path, handlers.Options{Write: true, Direct: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 4*mib {
		t.Fatalf("Size() = %d, want %d", d.Size(), 4*mib)
	}
	want := bytes.Repeat([]byte{0xAA}, 4*mib)

	// Aligned (O_DIRECT on block devices) and unaligned writes.
	buf := handlers.AlignedBuffer(8192)
	copy(buf, bytes.Repeat([]byte{1}, 8192))
	if _, err := d.WriteAt(buf, 4096); err != nil {
		t.Fatal(err)
	}
	copy(want[4096:], buf)
	if _, err := d.WriteAt([]byte("hello"), 3); err != nil {
		t.Fatal(err)
	}
	copy(want[3:], "hello")

	if err := d.ZeroRange(100, 2*mib+7); err != nil {
		t.Fatal(err)
	}
	clear(want[100 : 100+2*mib+7])
	if _, err := d.WriteAt([]byte("x"), 4*mib); !errors.Is(err, handlers.ErrOutOfRange) {
		t.Errorf("WriteAt past the end = %v, want ErrOutOfRange", err)
	}
	if n, err := d.ReadAt(make([]byte, 10), 4*mib-5); n != 5 || err != io.EOF {
		t.Errorf("ReadAt over the end = %d, %v; want 5, EOF", n, err)
	}

	w, err := handlers.NewWindow(d, 3*mib, mib)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("window"), 10); err != nil {
		t.Fatal(err)
	}
	copy(want[3*mib+10:], "window")
	if _, err := w.WriteAt([]byte("xx"), mib-1); !errors.Is(err, handlers.ErrOutOfRange) {
		t.Errorf("Window.WriteAt across its end = %v, want ErrOutOfRange", err)
	}
	if err := w.ZeroRange(mib-4096, 4096); err != nil {
		t.Fatal(err)
	}
	clear(want[4*mib-4096:])
	if _, err := handlers.NewWindow(d, 3*mib, mib+1); !errors.Is(err, handlers.ErrOutOfRange) {
		t.Errorf("NewWindow past the end = %v, want ErrOutOfRange", err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := d.DropCache(0, d.Size()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(content(t, d), want) {
		t.Error("content differs from what was written")
	}
}

func TestFile(t *testing.T) {
	testTarget(t, installtest.File(t, t.TempDir(), "f", 4*mib, 0xAA))
}

func TestLoopDevice(t *testing.T) {
	installtest.NeedRoot(t)
	dev := installtest.Loop(t, installtest.File(t, t.TempDir(), "f", 4*mib, 0xAA), false)
	testTarget(t, dev)
}

func TestReadOnlyLoopDevice(t *testing.T) {
	installtest.NeedRoot(t)
	dev := installtest.Loop(t, installtest.File(t, t.TempDir(), "f", mib, 0), true)
	if _, err := handlers.Open(dev, handlers.Options{Write: true}); !errors.Is(err, handlers.ErrReadOnly) {
		t.Errorf("Open(read-only loop device, Write) = %v, want ErrReadOnly", err)
	}
	d, err := handlers.Open(dev, handlers.Options{})
	if err != nil {
		t.Fatalf("Open(read-only loop device) for reading = %v", err)
	}
	d.Close()
}

func TestZeroRangePunchesHoles(t *testing.T) {
	path := installtest.File(t, t.TempDir(), "f", 8*mib, 0xAA)
	d, err := handlers.Open(path, handlers.Options{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.ZeroRange(0, 8*mib); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= 8*mib {
		t.Errorf("after ZeroRange the file uses %d bytes, want a hole", st.Blocks*512)
	}
	if !bundle.IsZero(content(t, d)) {
		t.Error("ZeroRange left non-zero bytes")
	}
}

func TestWipe(t *testing.T) {
	for _, mode := range []string{bundle.WipeQuick, bundle.WipeFull} {
		t.Run(mode, func(t *testing.T) {
			for _, loop := range []bool{false, true} {
				path := installtest.File(t, t.TempDir(), "f", 5*mib+512, 0xAA)
				if loop {
					installtest.NeedRoot(t)
					path = installtest.Loop(t, path, false)
				}
				d, err := handlers.Open(path, handlers.Options{Write: true})
				if err != nil {
					t.Fatal(err)
				}
				var last int64
				if err := handlers.Wipe(context.Background(), d, mode, func(n int64) { last = n }); err != nil {
					t.Fatal(err)
				}
				b := content(t, d)
				d.Close()
				if last != d.Size() {
					t.Errorf("last progress %d, want %d", last, d.Size())
				}
				if !bundle.IsZero(b[:mib]) || !bundle.IsZero(b[len(b)-mib:]) {
					t.Error("first or last MiB not zero")
				}
				if mode == bundle.WipeFull && !bundle.IsZero(b) {
					t.Error("full wipe left non-zero bytes")
				}
			}
		})
	}
	d, err := handlers.Open(installtest.File(t, t.TempDir(), "f", mib, 0), handlers.Options{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := handlers.Wipe(context.Background(), d, "shred", nil); err == nil {
		t.Error("Wipe(mode shred) succeeded")
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{1, 4096, 1 << 20} {
		b := handlers.AlignedBuffer(n)
		if len(b) != n || cap(b) != n || uintptr(unsafe.Pointer(&b[0]))%4096 != 0 {
			t.Errorf("AlignedBuffer(%d): len %d cap %d address %p", n, len(b), cap(b), &b[0])
		}
	}
}
