// Package installtest makes signed bundles, images and loop devices for the
// tests of the install engine and the lifeboat command.
package installtest

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// Board is the board name test bundles are compatible with.
const Board = "test-board"

// Key is a signing key with its public half in a trust store directory.
type Key struct {
	Pub  ed25519.PublicKey
	Priv ed25519.PrivateKey
	Dir  string // holds key.pub
}

// NewKey makes a key and a trust store directory holding it.
func NewKey(t testing.TB) *Key {
	t.Helper()
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k := &Key{Pub: pub, Priv: priv, Dir: t.TempDir()}
	b, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.Dir, "key.pub"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// Trust returns a trust store holding the key.
func (k *Key) Trust() *bundle.TrustStore { return bundle.NewTrustStore(k.Pub) }

// Image is a named image for a bundle.
type Image struct {
	Name string
	Data []byte
}

// Manifest returns a manifest for Board with the given steps.
func Manifest(steps ...bundle.Step) bundle.Manifest {
	return bundle.Manifest{Product: "demo", Version: "1.0", Compatible: []string{Board}, Steps: steps}
}

// Bundle writes a bundle of m and images (in that payload order), signed
// with k, with chunks of chunkSize bytes (0: the default).
func Bundle(t testing.TB, k *Key, m bundle.Manifest, chunkSize uint32, images ...Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, m, bundle.WriterOptions{
		ChunkSize: chunkSize, TempDir: t.TempDir(),
		Signers: []bundle.Signer{bundle.Ed25519Signer{Key: k.Priv}},
		Created: time.Unix(0, 0),
	})
	for _, im := range images {
		if _, err := w.AddImage(im.Name, bytes.NewReader(im.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Data returns n deterministic bytes of the given chunk size, mixing
// chunks of random bytes (stored raw), text-like bytes (stored LZ4) and
// zeros (not stored), so that every path of the pipeline is taken.
// Chunk i is zero when i%5 == 3.
func Data(seed uint64, n int, chunkSize int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	words := []string{"lifeboat ", "rescue ", "chunk ", "verify ", "board ", "\n"}
	for off, i := 0, 0; off < n; off, i = off+chunkSize, i+1 {
		c := b[off:min(n, off+chunkSize)]
		switch i % 5 {
		case 0, 2:
			for j := range c {
				c[j] = byte(r.Uint32())
			}
		case 1, 4:
			var s strings.Builder
			for s.Len() < len(c) {
				s.WriteString(words[r.IntN(len(words))])
			}
			copy(c, s.String())
		case 3:
			// zeros
		}
	}
	return b
}

// File writes size bytes of fill to a new file in dir and returns its path.
func File(t testing.TB, dir, name string, size int64, fill byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, bytes.Repeat([]byte{fill}, int(size)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// NeedRoot skips t unless it runs as root with the tool available. CI
// runs as root with the tools installed, so there it never skips.
func NeedRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices)")
	}
	for _, tool := range append([]string{"losetup"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// Loop attaches file to a loop device (read-only if ro) and detaches it
// when t ends.
func Loop(t testing.TB, file string, ro bool) string {
	t.Helper()
	NeedRoot(t)
	args := []string{"-f", "--show"}
	if ro {
		args = append(args, "-r")
	}
	out, err := exec.Command("losetup", append(args, file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v: %s", file, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}
