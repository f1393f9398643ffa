package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/bundle/bundletest"
)

// lowMemLimit is the writable memory (RLIMIT_DATA) the child process
// gets: enough for the Go runtime (which with cgo's threads takes over
// 100 MiB of it) and the largest index a reader takes (which opens at
// 160 MiB), far less than the claims below. RLIMIT_DATA rather than RLIMIT_AS: the Go
// runtime reserves over 1 GiB of address space at start, inaccessible and
// not memory, so an address-space limit tight enough to matter kills
// healthy Go processes at random; RLIMIT_DATA counts what is made
// writable, which is what a small board runs out of.
const lowMemLimit = 256 << 20

// hugeClaim returns a small bundle, signed by key, whose signed manifest
// and header claim an index of indexBytes (a multiple of 48), as a
// compromised build pipeline could make. Nothing backs the claim.
func hugeClaim(t testing.TB, key bundle.Signer, indexBytes uint64) []byte {
	return hugeClaimParts(t, key, indexBytes).Bytes()
}

func hugeClaimParts(t testing.TB, key bundle.Signer, indexBytes uint64) *bundletest.Parts {
	t.Helper()
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, bundle.Manifest{Product: "p", Version: "1", Compatible: []string{"b"},
		Steps: []bundle.Step{{Type: bundle.StepImage, Image: "x", Target: "disk"}}},
		bundle.WriterOptions{ChunkSize: 64 << 10, Signers: []bundle.Signer{key}, TempDir: t.TempDir(), Created: time.Unix(0, 0)})
	if _, err := w.AddImage("x", bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := bundletest.Split(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ClaimIndex(indexBytes); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(key); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMain lets the test binary open a bundle in a child process under an
// address-space limit (TestHugeClaimsLowMemory): with LIFEBOAT_LOWMEM_OPEN
// set to stream, at or unverified it opens the bundle file named by
// LIFEBOAT_LOWMEM_BUNDLE that way, prints "opened" or the error on stdout
// and exits 0; a crash exits otherwise.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LIFEBOAT_LOWMEM_OPEN"); mode != "" {
		os.Exit(lowMemChild(mode, os.Getenv("LIFEBOAT_LOWMEM_BUNDLE")))
	}
	os.Exit(m.Run())
}

func lowMemChild(mode, path string) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fmt.Println(err)
		return 2
	}
	trust := bundle.NewTrustStore(lowMemKey().Key.Public().(ed25519.PublicKey))
	switch mode {
	case "stream":
		_, err = bundle.NewReader(io.Reader(f), trust)
	case "at":
		_, err = bundle.NewReaderAt(f, fi.Size(), trust)
	case "unverified":
		_, err = bundle.ReadUnverified(f)
	default:
		err = fmt.Errorf("mode %q", mode)
	}
	if err == nil {
		fmt.Println("opened")
		return 0
	}
	fmt.Println(err)
	return 0
}

func lowMemKey() bundle.Ed25519Signer {
	return bundle.Ed25519Signer{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))}
}

// TestHugeClaimsLowMemory opens small bundles whose signed header and
// manifest claim sections far larger than the bundle, in a child process
// limited to lowMemLimit bytes of memory, as the rescue's PID 1 on a small
// board would be. Each must fail with a clean error; before the sizes were
// checked, the 1 GiB index claim died with "out of memory" (under a 1 GiB
// address-space limit as under this one), and in the rescue a dying PID 1
// is a kernel panic.
func TestHugeClaimsLowMemory(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	dir := t.TempDir()
	cases := []struct {
		name  string
		b     []byte
		want  error // nil: the bundle opens
		modes []string
	}{
		// The control: a real bundle opens under the same limit.
		{"a real bundle", realBundle(t, lowMemKey()), nil, []string{"stream", "at", "unverified"}},
		{"the largest index, all there", largestIndex(t, lowMemKey()), nil, []string{"stream", "at"}},
		{"index 1 GiB", hugeClaim(t, lowMemKey(), 1<<30/48*48), bundle.ErrFormat, []string{"stream", "at"}},
		{"index 16 GiB", hugeClaim(t, lowMemKey(), 16<<30/48*48), bundle.ErrFormat, []string{"stream", "at"}},
		{"the largest index", hugeClaim(t, lowMemKey(), bundle.MaxIndexSize), bundle.ErrTruncated, []string{"stream", "at"}},
		{"manifest 16 MiB", claimSections(t, 16<<20, 1), bundle.ErrTruncated, []string{"stream", "at", "unverified"}},
		{"signatures 1 MiB", claimSections(t, 100, 1<<20), bundle.ErrTruncated, []string{"stream", "at", "unverified"}},
	}
	for _, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if err := os.WriteFile(path, c.b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mode := range c.modes {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				cmd := exec.Command("prlimit", fmt.Sprintf("--data=%d", lowMemLimit), "--", os.Args[0], "-test.run=^$")
				// Fewer threads, less address space for their stacks
				// on a machine with many cores.
				cmd.Env = append(os.Environ(), "LIFEBOAT_LOWMEM_OPEN="+mode, "LIFEBOAT_LOWMEM_BUNDLE="+path, "GOMAXPROCS=2")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("opening a %d-byte bundle claiming %s (%s) under a %d-byte data limit: %v\n%s", len(c.b), c.name, mode, lowMemLimit, err, out)
				}
				want := "opened"
				if c.want != nil {
					want = errText(c.want)
				}
				if !strings.Contains(string(out), want) {
					t.Errorf("opening %s (%s) = %q, want %q", c.name, mode, out, want)
				}
			})
		}
	}
}

func errText(err error) string { return strings.TrimPrefix(err.Error(), "bundle: ") }

// claimSections returns a bundle header claiming a manifest of m bytes and
// a signature block of s bytes, followed by nothing.
func claimSections(t testing.TB, m, s uint32) []byte {
	p := &bundletest.Parts{Version: bundle.FormatVersion, HeaderSize: bundle.HeaderSize, ManifestSize: m, SignatureSize: s}
	return p.Header()
}

// realBundle is a bundle of a 16 MiB image in 1 MiB chunks.
func realBundle(t testing.TB, key bundle.Signer) []byte {
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, bundle.Manifest{Product: "p", Version: "1", Compatible: []string{"b"},
		Steps: []bundle.Step{{Type: bundle.StepImage, Image: "x", Target: "disk"}}},
		bundle.WriterOptions{Signers: []bundle.Signer{key}, TempDir: t.TempDir(), Created: time.Unix(0, 0)})
	if _, err := w.AddImage("x", io.LimitReader(patternReader{}, 16<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type patternReader struct{}

func (patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + i>>9)
	}
	return len(p), nil
}

// TestIndexMemory opens a bundle with the largest index a reader takes,
// all of it present, and counts the bytes allocated: the chunk list and a
// little more, however the index arrives.
func TestIndexMemory(t *testing.T) {
	b := largestIndex(t, lowMemKey())
	trust := bundle.NewTrustStore(lowMemKey().Key.Public().(ed25519.PublicKey))
	// 80 bytes a chunk. From a stream the list doubles as records arrive,
	// and TotalAlloc counts every list it outgrew: together less than the
	// final one, with size-class slack. Then the manifest, the signature
	// block and the read buffers.
	const list = bundle.MaxChunks * 80
	const limit = 3*list + 2<<20
	for _, tc := range []struct {
		name string
		open func() (*bundle.Reader, error)
	}{
		{"stream", func() (*bundle.Reader, error) { return bundle.NewReader(bytes.NewReader(b), trust) }},
		{"at", func() (*bundle.Reader, error) { return bundle.NewReaderAt(bytes.NewReader(b), int64(len(b)), trust) }},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r, err := tc.open()
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: opening the largest index: %v", tc.name, err)
		}
		if cs, _ := r.Chunks("x"); len(cs) != bundle.MaxChunks {
			t.Errorf("%s: %d chunks, want %d", tc.name, len(cs), bundle.MaxChunks)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Errorf("%s: opening allocated %d bytes, want at most %d", tc.name, got, limit)
		}
	}
}

// largestIndex returns a bundle of MaxChunks zero chunks of 64 KiB: 16 GiB
// of image, 12 MiB of index, no payload.
func largestIndex(t testing.TB, key bundle.Signer) []byte {
	p := hugeClaimParts(t, key, bundle.MaxIndexSize)
	zero := sha256.Sum256(make([]byte, 64<<10))
	p.Index = make([]byte, bundle.MaxIndexSize)
	for i := range p.Records() {
		copy(p.Record(i), zero[:])
	}
	if err := p.Edit(func(m *bundle.Manifest) { m.IndexSHA256 = p.IndexSHA256() }); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(key); err != nil {
		t.Fatal(err)
	}
	p.FixSizes()
	return p.Bytes()
}
