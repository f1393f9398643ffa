package install

import (
	"bytes"
	"os"
	"sync"
	"testing"

	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// readCounter counts the chunk-sized reads of the skip check.
type readCounter struct {
	handlers.Target
	mu    sync.Mutex
	reads int
}

func (r *readCounter) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.reads++
	r.mu.Unlock()
	return r.Target.ReadAt(p, off)
}

// TestSkipProbing checks that the skip-unchanged read backs off on a
// target that holds nothing of the image, and comes back where the target
// matches again, so a first install pays little for it and a resume or an
// update still skips what it can.
func TestSkipProbing(t *testing.T) {
	const n = 200
	k := installtest.NewKey(t)
	var data []byte
	for i := range n {
		data = append(data, bytes.Repeat([]byte{byte(i + 1)}, cs)...) // every chunk non-zero and distinct
	}
	b := imageBundle(t, k, data, 0)
	for _, tc := range []struct {
		name      string
		prefill   func(disk []byte) // what the target holds before
		maxReads  int
		minSkip   int
		wantSkips int // -1: at least minSkip
	}{
		{
			// Nothing matches: after missRun misses only every
			// probeStride-th chunk is read.
			name:     "blank",
			prefill:  func([]byte) {},
			maxReads: missRun + n/probeStride + 1,
		},
		{
			// A resumed install: the first 120 chunks are there.
			name:      "resume",
			prefill:   func(d []byte) { copy(d, data[:120*cs]) },
			maxReads:  120 + missRun + (n-120)/probeStride + 1,
			wantSkips: 120,
		},
		{
			// A region that matches after a long run of misses is found
			// again within probeStride chunks, and skipped from there.
			name:     "match after misses",
			prefill:  func(d []byte) { copy(d[100*cs:], data[100*cs:]) },
			minSkip:  100 - probeStride,
			maxReads: n,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := make([]byte, (n+1)*cs)
			tc.prefill(disk)
			target := installtest.File(t, t.TempDir(), "disk", int64(len(disk)), 0)
			if err := writeFile(target, disk); err != nil {
				t.Fatal(err)
			}
			var rc *readCounter
			res, err := run(t, open(t, b, k, false), Config{Workers: 1, Targets: map[string]string{"rootfs": target}}, func(t handlers.Target) handlers.Target {
				rc = &readCounter{Target: t}
				return rc
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readFile(t, target)[:len(data)], data) {
				t.Fatal("target does not hold the image")
			}
			s := res.Steps[0]
			if rc.reads > tc.maxReads {
				t.Errorf("%d skip-check reads, want at most %d", rc.reads, tc.maxReads)
			}
			if tc.wantSkips > 0 && s.SkippedChunks != tc.wantSkips {
				t.Errorf("skipped %d chunks, want %d", s.SkippedChunks, tc.wantSkips)
			}
			if s.SkippedChunks < tc.minSkip {
				t.Errorf("skipped %d chunks, want at least %d", s.SkippedChunks, tc.minSkip)
			}
		})
	}
}

func writeFile(path string, b []byte) error {
	return os.WriteFile(path, b, 0o644)
}
