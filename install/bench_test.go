package install

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// benchSize is the image of the pipeline benchmarks: 64 MiB in 1 MiB
// chunks, 2/5 random (stored raw), 2/5 text (LZ4), 1/5 zeros.
const benchSize = 64 << 20

type benchFixture struct {
	key    *installtest.Key
	bundle string // path
	target string
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	k := installtest.NewKey(b)
	data := installtest.Data(42, benchSize, bundle.DefaultChunkSize)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	bb := installtest.Bundle(b, k, m, 0, installtest.Image{Name: "rootfs", Data: data})
	dir := b.TempDir()
	f := &benchFixture{key: k, bundle: filepath.Join(dir, "bundle"), target: filepath.Join(dir, "target")}
	if err := os.WriteFile(f.bundle, bb, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(f.target, make([]byte, benchSize), 0o644); err != nil {
		b.Fatal(err)
	}
	return f
}

func (f *benchFixture) install(b *testing.B, stream, noSkip bool) {
	file, err := os.Open(f.bundle)
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	var br *bundle.Reader
	if stream {
		br, err = bundle.NewReader(file, f.key.Trust())
	} else {
		fi, _ := file.Stat()
		br, err = bundle.NewReaderAt(file, fi.Size(), f.key.Trust())
	}
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewPlan(br, Config{Board: board(), Targets: map[string]string{"rootfs": f.target}, NoSkip: noSkip})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.Execute(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkInstallWrite writes every chunk (NoSkip) from a bundle file:
// read, verify, decompress and write, with fsync at the end.
func BenchmarkInstallWrite(b *testing.B) {
	f := newBenchFixture(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		f.install(b, false, true)
	}
}

// BenchmarkInstallWriteStream is BenchmarkInstallWrite from a stream.
func BenchmarkInstallWriteStream(b *testing.B) {
	f := newBenchFixture(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		f.install(b, true, true)
	}
}

// BenchmarkInstallSkip installs onto a target that already holds the
// image: a repeat install, which only reads and hashes.
func BenchmarkInstallSkip(b *testing.B) {
	f := newBenchFixture(b)
	f.install(b, false, true)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		f.install(b, false, false)
	}
}

// BenchmarkDecode is the CPU cost of verifying and decompressing the
// chunks alone, one core.
func BenchmarkDecode(b *testing.B) {
	f := newBenchFixture(b)
	bb, _ := os.ReadFile(f.bundle)
	br, err := bundle.NewReaderAt(bytes.NewReader(bb), int64(len(bb)), f.key.Trust())
	if err != nil {
		b.Fatal(err)
	}
	chunks, _ := br.Chunks("rootfs")
	var stored, dst []byte
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		for i := range chunks {
			stored, _ = br.ReadStored(&chunks[i], stored)
			if dst, err = chunks[i].Decode(stored, dst); err != nil {
				b.Fatal(err)
			}
		}
	}
}
