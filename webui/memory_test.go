package webui

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// The memory test runs the server in a process of its own (this test
// binary again), so that the peak resident memory the install reports is
// the server's and nothing else's: not the test's bundle writing, not its
// HTTP client.
const memoryChildEnv = "LIFEBOAT_WEBUI_SERVER_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(memoryChildEnv); spec != "" {
		os.Exit(serverChild(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what the parent asks the child server to do.
type childSpec struct {
	Keys   string // trust store directory
	Target string // the file standing for the disk
}

// serverChild serves the page for an engineDevice on a loopback port,
// prints "SERVING <addr> <code>", and stops when its standard input
// closes.
func serverChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	trust, err := bundle.LoadTrustStore(s.Keys)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	dev := &engineDevice{
		trust:   trust,
		board:   &boards.Profile{Name: installtest.Board, Storage: map[string]boards.Storage{}},
		targets: map[string]string{"rootfs": s.Target},
		status:  Status{Board: installtest.Board},
	}
	srv, err := New(Config{Device: dev})
	if err != nil {
		fmt.Println(err)
		return 2
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return 2
	}
	fmt.Printf("SERVING %s %s\n", srv.Addr(), srv.Code())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// sparseImage writes an image of size bytes that is zero but for one
// 1 MiB piece of data (random and text-like chunks, as installtest.Data
// makes them) every stride bytes, and returns how many bytes are data.
func sparseImage(t *testing.T, path string, size, stride int64) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	var n int64
	for off, i := int64(0), uint64(1); off+1<<20 <= size; off, i = off+stride, i+1 {
		if _, err := f.WriteAt(installtest.Data(i, 1<<20, cs), off); err != nil {
			t.Fatal(err)
		}
		n += 1 << 20
	}
	return n
}

// bundleFile makes a bundle file of the image at img for target rootfs,
// streaming from the image file to the bundle file.
func bundleFile(t *testing.T, k *installtest.Key, img, out string) int64 {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	w := bundle.NewWriter(o, m, bundle.WriterOptions{TempDir: t.TempDir(), Signers: []bundle.Signer{bundle.Ed25519Signer{Key: k.Priv}}})
	if _, err := w.AddImage("rootfs", in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := o.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestUploadMemory uploads bundles of a 64 MiB and a 1 GiB image (mostly
// zero chunks, 1 MiB of data every 8 MiB) through the server into the
// engine, each to a fresh server process, and reads the server's peak
// resident memory from the install's done event (peak_rss_bytes). The
// bundle streams from the client's disk into the target: the peak must
// stay well under what a 128 MiB board has, and must not grow with the
// bundle.
func TestUploadMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 1 GiB image and its bundle; skipped with -short")
	}
	k := installtest.NewKey(t)
	dir := t.TempDir()
	var peaks []int64
	for _, size := range []int64{64 << 20, 1 << 30} {
		img := filepath.Join(dir, "image")
		data := sparseImage(t, img, size, 8<<20)
		b := filepath.Join(dir, "bundle.lfb")
		bsize := bundleFile(t, k, img, b)
		os.Remove(img)
		target := filepath.Join(dir, "disk")
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(target, size+1<<20); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		peak := uploadToChild(t, k, b, target)
		t.Logf("MEASURE upload of a %d MiB image (%d MiB of data, bundle %.1f MiB) through the server into the engine: %v, server peak RSS %.1f MiB",
			size>>20, data>>20, float64(bsize)/(1<<20), time.Since(start).Round(10*time.Millisecond), float64(peak)/(1<<20))
		peaks = append(peaks, peak)
		os.Remove(b)
		os.Remove(target)
	}
	// The engine's chunk buffers are 32 MiB at most; the rest is the Go
	// runtime and the server.
	const limit = 80 << 20
	for _, p := range peaks {
		if p <= 0 || p > limit {
			t.Errorf("server peak RSS %d bytes, want some, and at most %d", p, limit)
		}
	}
	if d := peaks[1] - peaks[0]; d > 16<<20 {
		t.Errorf("peak RSS grew by %.1f MiB from the 64 MiB image to the 1 GiB one: memory follows the bundle's size", float64(d)/(1<<20))
	}
}

// uploadToChild starts a server process, uploads the bundle file to it
// (streamed from disk by the HTTP client) and returns the peak resident
// memory its done event reports.
func uploadToChild(t *testing.T, k *installtest.Key, bundlePath, target string) int64 {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(childSpec{Keys: k.Dir, Target: target})
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), memoryChildEnv+"="+string(spec))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 || f[0] != "SERVING" {
		t.Fatalf("server child said %q (%v)", line, err)
	}
	base, code := "http://"+f[1], f[2]
	c := newClient()
	resp, err := c.Post(base+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"code": %q}`, code)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %v %v", resp, err)
	}
	resp.Body.Close()
	events, err := c.Get(base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()

	bf, err := os.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	fi, _ := bf.Stat()
	req, _ := http.NewRequest("PUT", base+"/api/bundle", bf)
	req.ContentLength = fi.Size()
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s %s", resp.Status, body)
	}
	done := readEvents(events.Body).until(t, "the install's done event", func(m map[string]any) bool { return m["event"] == "done" })
	peak, _ := done["peak_rss_bytes"].(float64)
	return int64(peak)
}
