package initramfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// sample is compressible data shaped a bit like an archive.
func sample() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < 512<<10 {
		b.WriteString("070701 some cpio-like header text ")
		for range r.IntN(200) {
			b.WriteByte(byte(r.IntN(16)))
		}
	}
	return b.Bytes()
}

func TestCompress(t *testing.T) {
	data := sample()
	hostXZ, _ := exec.LookPath("xz")
	for _, tt := range []struct {
		name string
		c    compressor
	}{
		{"xz go", compressor{format: XZ, goarch: "amd64"}},
		{"xz host", compressor{format: XZ, goarch: "amd64", xzPath: hostXZ}},
		{"xz host arm64", compressor{format: XZ, goarch: "arm64", xzPath: hostXZ}},
		{"lz4", compressor{format: LZ4}},
		{"cpio", compressor{format: CPIO}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.c.format == XZ && tt.name != "xz go" && hostXZ == "" {
				t.Skip("no xz on the host (Debian package xz-utils)")
			}
			var out bytes.Buffer
			if err := tt.c.compress(context.Background(), &out, bytes.NewReader(data)); err != nil {
				t.Fatalf("compress = %v", err)
			}
			t.Logf("%s: %d -> %d bytes", tt.c, len(data), out.Len())
			got := decompress(t, tt.c.format, out.Bytes())
			if !bytes.Equal(got, data) {
				t.Errorf("round trip through %s changed the data (%d bytes back, want %d)", tt.c, len(got), len(data))
			}
		})
	}
}

// decompress checks the stream is in the variant the kernel reads, then
// unpacks it, with the reference tool where there is one.
func decompress(t *testing.T, f Format, b []byte) []byte {
	t.Helper()
	switch f {
	case XZ:
		// Stream header: magic, then flags 0x00 0x01 = CRC32 checks (the
		// kernel's decoder has no CRC64 by default).
		if !bytes.HasPrefix(b, []byte("\xfd7zXZ\x00\x00\x01")) {
			t.Fatalf("xz stream header % x, want CRC32 flags", b[:8])
		}
		if tool, err := exec.LookPath("xz"); err == nil {
			cmd := exec.Command(tool, "-dc")
			cmd.Stdin = bytes.NewReader(b)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz -d: %v", err)
			}
			return out
		}
		r, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case LZ4:
		// Legacy frame magic 0x184C2102, little-endian.
		if !bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}) {
			t.Fatalf("lz4 magic % x, want the legacy frame's", b[:4])
		}
		if tool, err := exec.LookPath("lz4"); err == nil {
			cmd := exec.Command(tool, "-dc")
			cmd.Stdin = bytes.NewReader(b)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("lz4 -d: %v", err)
			}
			return out
		}
		out, err := io.ReadAll(lz4.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return b
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"xz", "lz4", "cpio"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Errorf("ParseFormat(%q) = %q, %v", s, f, err)
		}
	}
	if _, err := ParseFormat("gzip"); !errors.Is(err, ErrFormat) {
		t.Errorf("ParseFormat(gzip) = %v, want ErrFormat", err)
	}
}
