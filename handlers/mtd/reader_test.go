package mtd_test

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd/mtdtest"
)

// TestReaderReadsWhatWriterWrote writes images past bad blocks (factory
// ones, and ones the write marks) and reads them back with a Reader of the
// same region.
func TestReaderReadsWhatWriterWrote(t *testing.T) {
	img := image(3, 3*es+es/2+100)
	tests := []struct {
		name   string
		setup  func(f *mtdtest.Flash)
		off    int64
		length int64
		good   int64 // good blocks in the region
	}{
		{name: "clean", good: 8},
		{name: "factory bad blocks", setup: func(f *mtdtest.Flash) { f.Bad[1], f.Bad[2] = true, true }, good: 6},
		{name: "marked bad while writing", setup: func(f *mtdtest.Flash) { f.FailWrite[0], f.FailErase[3] = true, true }, good: 6},
		{name: "region at an offset", setup: func(f *mtdtest.Flash) { f.Bad[3] = true }, off: 2 * es, length: 5 * es, good: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mtdtest.NewNAND(8, es, page)
			if tt.setup != nil {
				tt.setup(f)
			}
			if _, err := mtd.WriteImage(f, bytes.NewReader(img), mtd.Options{Offset: tt.off, Length: tt.length}); err != nil {
				t.Fatalf("WriteImage() = %v", err)
			}
			r, err := mtd.NewReader(f, tt.off, tt.length)
			if err != nil {
				t.Fatalf("NewReader() = %v", err)
			}
			if r.Size() != tt.good*es {
				t.Errorf("Size() = %d, want %d", r.Size(), tt.good*es)
			}
			got := make([]byte, len(img))
			if n, err := r.ReadAt(got, 0); n != len(img) || err != nil {
				t.Fatalf("ReadAt(all) = %d, %v", n, err)
			}
			if !bytes.Equal(got, img) {
				t.Error("ReadAt(all) differs from the image")
			}
			// A read across a passed-over block, from the middle of one.
			part := make([]byte, es+77)
			if n, err := r.ReadAt(part, es-33); n != len(part) || err != nil || !bytes.Equal(part, img[es-33:2*es+44]) {
				t.Errorf("ReadAt(%d bytes at %d) = %d, %v, and the bytes differ: %v", len(part), es-33, n, err, !bytes.Equal(part, img[es-33:2*es+44]))
			}
			// Past the good blocks: what is there, then io.EOF.
			tail := make([]byte, 100)
			if n, err := r.ReadAt(tail, r.Size()-40); n != 40 || err != io.EOF {
				t.Errorf("ReadAt(over the end) = %d, %v, want 40, io.EOF", n, err)
			}
			if n, err := r.ReadAt(tail, r.Size()); n != 0 || err != io.EOF {
				t.Errorf("ReadAt(at the end) = %d, %v, want 0, io.EOF", n, err)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(f *mtdtest.Flash)
		off, length int64
		want        error
	}{
		{name: "unaligned offset", off: page, want: mtd.ErrUnaligned},
		{name: "unaligned length", length: es + page, want: mtd.ErrUnaligned},
		{name: "past the end", off: 4 * es, length: 8 * es, want: mtd.ErrNoSpace},
		{name: "negative offset", off: -es, want: mtd.ErrUnaligned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mtdtest.NewNAND(8, es, page)
			if _, err := mtd.NewReader(f, tt.off, tt.length); !errors.Is(err, tt.want) {
				t.Errorf("NewReader(%d, %d) = %v, want %v", tt.off, tt.length, err, tt.want)
			}
		})
	}

	t.Run("read fails", func(t *testing.T) {
		f := mtdtest.NewNAND(8, es, page)
		f.FailRead[2] = true
		r, err := mtd.NewReader(f, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 3*es)
		if n, err := r.ReadAt(p, 0); n != 2*es || !errors.Is(err, syscall.EIO) {
			t.Errorf("ReadAt() = %d, %v, want %d bytes and EIO", n, err, 2*es)
		}
	})
}
