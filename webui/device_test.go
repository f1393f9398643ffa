package webui

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// engineDevice is a Device that does for real what the rescue does with an
// upload: bundle.NewReader on the request body, install.NewPlan and
// Execute against files that stand for the board's storage. Its factory
// reset wipes a file standing for the state partition with handlers.Wipe.
type engineDevice struct {
	trust   *bundle.TrustStore
	board   *boards.Profile
	targets map[string]string // target name -> file
	state   string            // the state partition's file

	// hold, when set, is waited for once the bundle's signature has
	// verified: an install that stays running while a test tries a
	// second one.
	hold chan struct{}

	mu       sync.Mutex
	status   Status
	lastErr  error
	installs int // finished installs, good or bad
	resets   int
	reboots  int
	peakRSS  int64
}

const cs = bundle.MinChunkSize

func newEngineDevice(t testing.TB, k *installtest.Key, targetSize int64) *engineDevice {
	dir := t.TempDir()
	return &engineDevice{
		trust:   k.Trust(),
		board:   &boards.Profile{Name: installtest.Board, Revision: "2", Storage: map[string]boards.Storage{}},
		targets: map[string]string{"rootfs": installtest.File(t, dir, "rootfs", targetSize, 0xAA)},
		state:   installtest.File(t, dir, "state", 3<<20, 0x55),
		status: Status{
			Board: installtest.Board + ":2", Serial: "SN0042", Reason: "button held at power-on; action: reinstall",
			Product: "demo", Version: "0.9", Activity: "waiting for a bundle", CanReset: true,
		},
	}
}

func (d *engineDevice) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

func (d *engineDevice) Install(ctx context.Context, u Upload, obs install.Observer) (err error) {
	defer func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.installs++
		d.lastErr = err
		if err != nil {
			d.status.LastError = oneLine(err.Error())
		}
	}()
	br, err := bundle.NewReader(u.Body, d.trust)
	if err != nil {
		return fmt.Errorf("%s: %w", u.From, err)
	}
	obs(install.StartEvent(br, u.From))
	if d.hold != nil {
		<-d.hold
	}
	p, err := install.NewPlan(br, install.Config{Board: d.board, Targets: d.targets, Observer: obs})
	if err != nil {
		return err
	}
	res, err := p.Execute(ctx)
	if err != nil {
		return err
	}
	m := br.Manifest()
	d.mu.Lock()
	d.status.Product, d.status.Version, d.peakRSS = m.Product, m.Version, res.PeakRSS
	d.mu.Unlock()
	return nil
}

func (d *engineDevice) FactoryReset(ctx context.Context, obs install.Observer) error {
	dev, err := handlers.Open(d.state, handlers.Options{Write: true})
	if err != nil {
		return err
	}
	defer dev.Close()
	start := time.Now()
	obs(install.Event{Type: install.EventStepStart, Time: start, Step: &install.StepInfo{Step: 1, Steps: 1, Type: "wipe", Target: "data", Path: d.state, Bytes: dev.Size()}})
	if err := handlers.Wipe(ctx, dev, bundle.WipeQuick, nil); err != nil {
		return fmt.Errorf("state data: %w", err)
	}
	st := &install.StepStats{Step: 1, Steps: 1, Type: "wipe", Target: "data", ZeroedBytes: dev.Size(), Seconds: time.Since(start).Seconds(), Note: "quick"}
	obs(install.Event{Type: install.EventStepDone, Time: time.Now(), StepDone: st})
	d.mu.Lock()
	d.resets++
	d.mu.Unlock()
	return nil
}

func (d *engineDevice) Reboot() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reboots++
	return nil
}

func (d *engineDevice) counts() (installs, resets, reboots int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.installs, d.resets, d.reboots
}

// reason is the one line the console would show for the last install.
func (d *engineDevice) reason() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastErr == nil {
		return ""
	}
	return oneLine(d.lastErr.Error())
}

// rootfs reads the target file.
func (d *engineDevice) rootfs(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(d.targets["rootfs"])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantImage fails unless the target starts with the image.
func (d *engineDevice) wantImage(t testing.TB, image []byte) {
	t.Helper()
	if !bytes.Equal(d.rootfs(t)[:len(image)], image) {
		t.Error("the target does not hold the image")
	}
}

// checkUntouched fails unless the target holds nothing but its fill.
func (d *engineDevice) checkUntouched(t testing.TB) {
	t.Helper()
	if i := firstDiff(d.rootfs(t), 0xAA); i >= 0 {
		t.Fatalf("the target was written (first change at byte %d), want it untouched", i)
	}
}

func firstDiff(b []byte, fill byte) int {
	for i, c := range b {
		if c != fill {
			return i
		}
	}
	return -1
}

// checkPrefix checks that the target holds a whole number of the image's
// chunks from its start and its fill after them: nothing unverified (a
// part of a chunk, or a chunk after a missing one) was written. It
// returns how many chunks were written.
func checkPrefix(t testing.TB, got, image []byte) int {
	t.Helper()
	n := 0
	for off := 0; off < len(image); off += cs {
		end := min(off+cs, len(image))
		if !bytes.Equal(got[off:end], image[off:end]) {
			break
		}
		n++
	}
	rest := got[min(n*cs, len(image)):]
	if i := firstDiff(rest, 0xAA); i >= 0 {
		t.Fatalf("target: %d whole chunks of the image, then byte %d changed: something unverified was written", n, n*cs+i)
	}
	return n
}

// Bundles for the tests.
type testBundles struct {
	key   *installtest.Key
	image []byte
	good  []byte
}

func newBundles(t testing.TB, imageSize int) *testBundles {
	k := installtest.NewKey(t)
	img := installtest.Data(7, imageSize, cs)
	return &testBundles{key: k, image: img, good: imageBundle(t, k, img, "demo", "1.0", installtest.Board)}
}

func imageBundle(t testing.TB, k *installtest.Key, img []byte, product, version string, boards ...string) []byte {
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	m.Product, m.Version, m.Compatible = product, version, boards
	return installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: img})
}

// unsigned returns b without its signature block: the header says none.
func unsigned(t testing.TB, b []byte) []byte {
	t.Helper()
	ms := binary.LittleEndian.Uint32(b[16:])
	ss := binary.LittleEndian.Uint32(b[20:])
	out := append([]byte(nil), b[:bundle.HeaderSize+int(ms)]...)
	out = append(out, b[bundle.HeaderSize+int(ms)+int(ss):]...)
	binary.LittleEndian.PutUint32(out[20:], 0)
	binary.LittleEndian.PutUint32(out[60:], crc32.ChecksumIEEE(out[:60]))
	if _, err := bundle.NewReader(bytes.NewReader(out), bundle.NewTrustStore()); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("unsigned bundle: NewReader = %v, want a signature error", err)
	}
	return out
}
