package test

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/demo"
)

// TestPowerCut pulls the power (SIGKILL to QEMU) in the middle of a
// factory install, at a random moment inside a given step, then boots the
// rescue again on the same disk: the install completes, the disk verifies
// on the host, and a cut inside an image step is resumed: the second boot
// skips the chunks the first one wrote.
//
// The windows are made wide enough to hit: the bundle is served at
// 6 MB/s, and for the partition step (a few small writes) the disk allows
// 4 writes a second. The second boot runs at full speed.
func TestPowerCut(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random cut moments: seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	images := map[int64]string{2: p.Artifacts.Rootfs, 3: p.Artifacts.Boot, 5: p.Artifacts.Rescue}

	cuts := []struct {
		name     string
		step     int64         // cut inside this step
		from, to time.Duration // after the step's start
		disk     string        // -drive options of the cut boot
		prod     bool          // boot production afterwards
	}{
		{name: "partition", step: 1, from: 50 * time.Millisecond, to: 600 * time.Millisecond, disk: "throttling.iops-write=4"},
		{name: "rootfs", step: 2, from: 500 * time.Millisecond, to: 3 * time.Second, prod: true},
		{name: "rescue", step: 5, from: 200 * time.Millisecond, to: 1200 * time.Millisecond},
	}
	for _, c := range cuts {
		delay := c.from + time.Duration(rng.Int64N(int64(c.to-c.from)))
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			disk := blankDisk(t)
			srv := serve(t, filepath.Dir(p.Bundle))
			srv.BytesPerSecond = 6e6
			url := "lifeboat.url=" + srv.GuestURL(demo.BundleName)

			// The first boot, cut at random inside the step.
			v, tl := bootRescue(t, p, rescueBoot{Disk: disk, DiskOptions: c.disk, Params: []string{url}})
			start := waitEvent(t, v, tl, 0, 2*time.Minute, "the step's start", stepEvent("step-start", c.step))
			time.Sleep(delay)
			v.Kill()
			cutAt := start.At + delay
			var before, beforeSkipped int64
			landed := true
			for _, e := range tl.Events() {
				if e.At > cutAt {
					break
				}
				if e.Kind() == "step-done" && e.Int("step") == c.step {
					landed = false
				}
				if e.Kind() == "progress" && e.Int("step") == c.step {
					before, beforeSkipped = e.Int("written_bytes"), e.Int("skipped_bytes")
				}
			}
			t.Logf("MEASURE power cut %s: %v after step %d started (%v after boot); step done before the cut: %v; last progress: written %d bytes, skipped %d bytes",
				c.name, delay.Round(time.Millisecond), c.step, cutAt.Round(time.Millisecond), !landed, before, beforeSkipped)
			if !landed {
				t.Errorf("the cut came after step %d had finished; want it inside", c.step)
			}

			if zero, at := allZero(t, disk); !zero {
				t.Logf("MEASURE power cut %s: the cut boot left data on the disk (first non-zero byte at %d)", c.name, at)
			} else {
				t.Logf("MEASURE power cut %s: the cut boot left the disk all zero", c.name)
			}

			// The second boot, same disk, full speed.
			srv.BytesPerSecond = 0
			v2, tl2 := bootRescue(t, p, rescueBoot{Disk: disk, Params: []string{url}})
			summary := waitInstalled(t, v2, tl2, 3*time.Minute)
			var skipped, written int64
			note := ""
			for _, e := range tl2.Events() {
				if e.Kind() == "step-done" && e.Int("step") == c.step {
					skipped, written = e.Int("skipped_chunks"), e.Int("written_chunks")
					note, _ = e.Fields["note"].(string)
				}
			}
			reason := ""
			for _, l := range tl2.Lines() {
				if i := strings.Index(l.Text, demo.MarkReason); i >= 0 {
					reason = l.Text[i+len(demo.MarkReason):]
					break
				}
			}
			t.Logf("MEASURE power cut %s: second boot (reason %q): %s", c.name, reason, summary)
			if note != "" {
				t.Logf("MEASURE power cut %s: step %d on the second boot: %s", c.name, c.step, note)
			}
			if img, ok := images[c.step]; ok {
				// A second boot writes the image's data chunks the disk
				// does not hold yet; its zero chunks are skipped or zeroed,
				// never written. So the data chunks it did not write are
				// those the cut boot had written.
				total, zeros := imageChunks(t, img, bundle.DefaultChunkSize)
				resumed := total - zeros - written
				t.Logf("MEASURE power cut %s: step %d on the second boot: %d data chunks in the image, wrote %d, so %d resumed from the cut boot (skipped %d chunks, %d of the image's chunks are zero)",
					c.name, c.step, total-zeros, written, resumed, skipped, zeros)
				if resumed <= 0 {
					t.Errorf("step %d wrote all %d data chunks again: nothing the cut boot wrote was kept", c.step, written)
				}
				// Writes go to the disk with O_DIRECT before they are
				// counted: what the last event before the cut reported
				// written must all be skipped now.
				if want := before / bundle.DefaultChunkSize; resumed < want {
					t.Errorf("step %d resumed %d chunks, want at least the %d the cut boot reported written", c.step, resumed, want)
				}
			}
			verifyDisk(t, p, disk)
			if c.prod {
				d := bootProduction(t, p, disk)
				t.Logf("MEASURE power cut %s: production boot ok after %v", c.name, d.Round(10*time.Millisecond))
			}
		})
	}
}
