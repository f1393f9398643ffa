package ubi_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi/ubitest"
)

const testLEB = 126976

// newDevice returns a UBI device with the volumes "rootfs" (ID 0, holding
// "old") and "rootfs_b" (ID 1), 8 LEBs each.
func newDevice(t *testing.T) *ubitest.Device {
	t.Helper()
	d := ubitest.New(60, testLEB)
	for _, name := range []string{"rootfs", "rootfs_b"} {
		if _, err := d.MakeVolume(ubi.VolumeSpec{Name: name, ID: ubi.AutoID, Size: 8 * testLEB}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ubi.UpdateVolume(d, 0, 3, bytes.NewReader([]byte("old"))); err != nil {
		t.Fatal(err)
	}
	return d
}

func volume(t *testing.T, d *ubitest.Device, name string) ubi.Volume {
	t.Helper()
	v, err := ubi.FindVolume(d, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// writeChunks writes img to w in pieces of n bytes, as an install hands
// over its chunks.
func writeChunks(t *testing.T, w io.Writer, img []byte, n int) {
	t.Helper()
	for len(img) > 0 {
		k := min(n, len(img))
		if m, err := w.Write(img[:k]); m != k || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", k, m, err)
		}
		img = img[k:]
	}
}

func TestVolumeWriter(t *testing.T) {
	img := bytes.Repeat([]byte("new rootfs "), 50000) // 550000 bytes: 5 LEBs
	d := newDevice(t)
	w, err := ubi.NewVolumeWriter(d, 0, int64(len(img)), ubi.VolumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := volume(t, d, "rootfs"); !v.Corrupted {
		t.Error("the volume does not read as being updated once the update has started")
	}
	writeChunks(t, w, img, 64<<10)
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if got, _ := d.Data("rootfs"); !bytes.Equal(got, img) {
		t.Error("the volume does not hold the image")
	}
	if v := volume(t, d, "rootfs"); v.Corrupted {
		t.Error("the volume is still marked after a whole update")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ubi.ErrClosed) {
		t.Errorf("Write after Close = %v, want %v", err, ubi.ErrClosed)
	}
	if d := cmp.Diff([]string{"volup 0 size=3", "volup 0 size=550000"}, d.Calls()[2:]); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
}

func TestVolumeWriterErrors(t *testing.T) {
	img := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	size := int64(len(img))
	tests := []struct {
		name  string
		write func(t *testing.T, w *ubi.VolumeWriter)
		flip  bool // the volume reads back with a flipped bit
		want  error
		whole bool // the volume is left whole (not marked)
	}{
		{
			name:  "stream ends early",
			write: func(t *testing.T, w *ubi.VolumeWriter) { writeChunks(t, w, img[:size/2], 4096) },
			want:  ubi.ErrShortUpdate,
		},
		{
			name:  "nothing written",
			write: func(t *testing.T, w *ubi.VolumeWriter) {},
			want:  ubi.ErrShortUpdate,
		},
		{
			name: "more bytes than announced",
			write: func(t *testing.T, w *ubi.VolumeWriter) {
				writeChunks(t, w, img[:size-10], 4096)
				if n, err := w.Write(img[:20]); n != 0 || !errors.Is(err, ubi.ErrTooLong) {
					t.Errorf("Write(past the size) = %d, %v, want 0, %v", n, err, ubi.ErrTooLong)
				}
			},
			want: ubi.ErrTooLong,
		},
		{
			name:  "read-back differs",
			write: func(t *testing.T, w *ubi.VolumeWriter) { writeChunks(t, w, img, 4096) },
			flip:  true,
			want:  ubi.ErrVerify,
			whole: true, // the kernel took every byte; what it reads back is wrong
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDevice(t)
			if tt.flip {
				d.FlipOnRead(0, 12345)
			}
			w, err := ubi.NewVolumeWriter(d, 0, size, ubi.VolumeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tt.write(t, w)
			err = w.Close()
			if !errors.Is(err, tt.want) {
				t.Errorf("Close() = %v, want %v", err, tt.want)
			}
			if again := w.Close(); again != err {
				t.Errorf("second Close() = %v, want the first's %v", again, err)
			}
			if v := volume(t, d, "rootfs"); v.Corrupted == tt.whole {
				t.Errorf("volume marked corrupted: %v, want %v", v.Corrupted, !tt.whole)
			}
		})
	}
}

// TestVolumeWriterNoVerify: without the read-back, a volume that reads
// back wrong is not noticed; the update itself is still checked.
func TestVolumeWriterNoVerify(t *testing.T) {
	img := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	for _, whole := range []bool{true, false} {
		d := newDevice(t)
		d.FlipOnRead(0, 5)
		w, err := ubi.NewVolumeWriter(d, 0, int64(len(img)), ubi.VolumeOptions{NoVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		n := len(img)
		if !whole {
			n -= 100
		}
		writeChunks(t, w, img[:n], 4096)
		if err := w.Close(); whole != (err == nil) || (!whole && !errors.Is(err, ubi.ErrShortUpdate)) {
			t.Errorf("whole image %v: Close() = %v", whole, err)
		}
	}
}

func TestVolumeWriterEmpty(t *testing.T) {
	d := newDevice(t)
	w, err := ubi.NewVolumeWriter(d, 0, 0, ubi.VolumeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if got, _ := d.Data("rootfs"); len(got) != 0 || volume(t, d, "rootfs").Corrupted {
		t.Errorf("volume holds %q (marked %v), want it empty and whole", got, volume(t, d, "rootfs").Corrupted)
	}
}

func TestSwapWriter(t *testing.T) {
	img := bytes.Repeat([]byte("new rootfs "), 50000)
	t.Run("whole image: swapped", func(t *testing.T) {
		d := newDevice(t)
		w, err := ubi.NewSwapWriter(d, "rootfs", "rootfs_b", int64(len(img)), ubi.VolumeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, img, 1<<20)
		if got, _ := d.Data("rootfs"); string(got) != "old" {
			t.Error("rootfs changed before Close")
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		if got, _ := d.Data("rootfs"); !bytes.Equal(got, img) {
			t.Error("rootfs does not hold the new image")
		}
		if got, _ := d.Data("rootfs_b"); string(got) != "old" {
			t.Errorf("rootfs_b holds %.10q, want the old image", got)
		}
		want := []string{"volup 1 size=550000", "rnvol [{1 rootfs} {0 rootfs_b}]"}
		if diff := cmp.Diff(want, d.Calls()[3:]); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
	for name, flip := range map[string]bool{"stream ends early": false, "read-back differs": true} {
		t.Run(name+": nothing renamed", func(t *testing.T) {
			d := newDevice(t)
			if flip {
				d.FlipOnRead(1, 7)
			}
			w, err := ubi.NewSwapWriter(d, "rootfs", "rootfs_b", int64(len(img)), ubi.VolumeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n := len(img)
			if !flip {
				n = 1000
			}
			writeChunks(t, w, img[:n], 4096)
			if err := w.Close(); err == nil {
				t.Fatal("Close() = nil, want an error")
			}
			if got, _ := d.Data("rootfs"); string(got) != "old" || volume(t, d, "rootfs").ID != 0 {
				t.Error("rootfs changed")
			}
			for _, c := range d.Calls() {
				if c[:5] == "rnvol" {
					t.Errorf("renamed after a failed update: %s", c)
				}
			}
		})
	}
}
