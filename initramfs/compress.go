package initramfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Format is how the cpio archive is compressed.
type Format string

// The formats a Linux kernel unpacks an initramfs from (CONFIG_RD_XZ,
// CONFIG_RD_LZ4), in the variants it accepts.
const (
	// XZ with CRC32 checks: the kernel's xz decoder does not do the xz
	// tool's default CRC64.
	XZ Format = "xz"
	// LZ4 in the legacy frame (lz4 -l): the kernel does not read the
	// modern LZ4 frame format. Faster to unpack, bigger than XZ.
	LZ4 Format = "lz4"
	// CPIO is no compression at all.
	CPIO Format = "cpio"
)

// ErrFormat reports an unknown compression format.
var ErrFormat = errors.New("initramfs: unknown format (want xz, lz4 or cpio)")

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case XZ, LZ4, CPIO:
		return f, nil
	}
	return "", fmt.Errorf("%w: %q", ErrFormat, s)
}

// compressor compresses an archive into a format.
type compressor struct {
	format Format
	// goarch picks the xz branch filter: executable code compresses
	// better after it, and the kernel decodes only the x86 one
	// (CONFIG_XZ_DEC_X86, set by Debian; the ARM64 one is newer than 6.1).
	goarch string
	// xzPath is the host's xz tool. It packs about 15% tighter than the Go
	// encoder; without it the Go encoder is used.
	xzPath string
}

func newCompressor(f Format, goarch string) compressor {
	c := compressor{format: f, goarch: goarch}
	if f == XZ {
		c.xzPath, _ = exec.LookPath("xz")
	}
	return c
}

// String says which tool compresses, for the build report.
func (c compressor) String() string {
	switch {
	case c.format == XZ && c.xzPath != "":
		return "xz " + c.xzArgs()[0] + " (host xz)"
	case c.format == XZ:
		return "xz crc32 (Go encoder)"
	case c.format == LZ4:
		return "lz4 legacy frame (Go encoder)"
	}
	return string(c.format)
}

func (c compressor) xzArgs() []string {
	args := []string{"--check=crc32"}
	if c.goarch == "amd64" || c.goarch == "386" {
		args = append(args, "--x86")
	}
	// An 8 MiB dictionary covers most of an archive; the kernel allocates
	// it while unpacking. Higher presets and "extreme" gained nothing
	// measurable on a rescue image and took twice as long.
	return append(args, "--lzma2=preset=6,dict=8MiB", "--stdout", "--threads=1")
}

// compress writes src compressed to dst.
func (c compressor) compress(ctx context.Context, dst io.Writer, src io.Reader) error {
	switch c.format {
	case CPIO:
		_, err := io.Copy(dst, src)
		return err
	case LZ4:
		w := lz4.NewWriter(dst)
		if err := w.Apply(lz4.LegacyOption(true), lz4.CompressionLevelOption(lz4.Level9)); err != nil {
			return fmt.Errorf("lz4: %w", err)
		}
		if _, err := io.Copy(w, src); err != nil {
			return fmt.Errorf("lz4: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("lz4: %w", err)
		}
		return nil
	case XZ:
		if c.xzPath != "" {
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, c.xzPath, c.xzArgs()...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = src, dst, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("xz: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
			}
			return nil
		}
		w, err := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 8 << 20}.NewWriter(dst)
		if err != nil {
			return fmt.Errorf("xz: %w", err)
		}
		if _, err := io.Copy(w, src); err != nil {
			return fmt.Errorf("xz: %w", err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("xz: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrFormat, c.format)
}

// countWriter counts bytes written through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
