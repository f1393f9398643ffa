package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

const cs = bundle.MinChunkSize // small chunks: many of them in small images

// imageSize is 21 chunks and a bit: the last chunk is short.
const imageSize = 21*cs + 1000

// open opens b as a file-backed (seekable) or streamed bundle.
func open(t *testing.T, b []byte, k *installtest.Key, stream bool) *bundle.Reader {
	t.Helper()
	var br *bundle.Reader
	var err error
	if stream {
		br, err = bundle.NewReader(bytes.NewReader(b), k.Trust())
	} else {
		br, err = bundle.NewReaderAt(bytes.NewReader(b), int64(len(b)), k.Trust())
	}
	if err != nil {
		t.Fatal(err)
	}
	return br
}

func board() *boards.Profile {
	return &boards.Profile{Name: installtest.Board, Storage: map[string]boards.Storage{}}
}

func run(t *testing.T, br *bundle.Reader, cfg Config, wrap func(handlers.Target) handlers.Target) (*Result, error) {
	t.Helper()
	if cfg.Board == nil && cfg.BoardName == "" {
		cfg.Board = board()
	}
	p, err := NewPlan(br, cfg)
	if err != nil {
		return nil, err
	}
	p.wrap = wrap
	return p.Execute(context.Background())
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imageBundle is a bundle with one image step writing "rootfs" to target
// "rootfs" at offset at.
func imageBundle(t *testing.T, k *installtest.Key, data []byte, at uint64) []byte {
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs", Offset: at})
	return installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
}

func TestInstallImage(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(1, imageSize, cs)
	b := imageBundle(t, k, data, 4096)
	zeroChunks, chunks := 0, (imageSize+cs-1)/cs
	for i := 0; i < chunks; i++ {
		if i%5 == 3 {
			zeroChunks++
		}
	}
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			dir := t.TempDir()
			target := installtest.File(t, dir, "disk", 2<<20, 0xAA)
			cfg := Config{Targets: map[string]string{"rootfs": target}}

			res, err := run(t, open(t, b, k, stream), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := readFile(t, target)
			if !bytes.Equal(got[4096:4096+imageSize], data) {
				t.Fatal("target does not hold the image after the install")
			}
			if !bytes.Equal(got[:4096], bytes.Repeat([]byte{0xAA}, 4096)) || got[4096+imageSize] != 0xAA {
				t.Fatal("install wrote outside the image's range")
			}
			want := StepStats{Step: 1, Steps: 1, Type: "image", Target: "rootfs",
				WrittenChunks: chunks - zeroChunks, ZeroedChunks: zeroChunks,
				WrittenBytes: imageSize - int64(zeroChunks)*cs, ZeroedBytes: int64(zeroChunks) * cs}
			if diff := cmp.Diff(want, res.Steps[0], ignoreSeconds); diff != "" {
				t.Errorf("first install (-want +got):\n%s", diff)
			}

			// A second install finds everything in place.
			res, err = run(t, open(t, b, k, stream), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			want = StepStats{Step: 1, Steps: 1, Type: "image", Target: "rootfs", SkippedChunks: chunks, SkippedBytes: imageSize}
			if diff := cmp.Diff(want, res.Steps[0], ignoreSeconds); diff != "" {
				t.Errorf("second install (-want +got):\n%s", diff)
			}

			// --no-skip writes everything again.
			cfg.NoSkip, cfg.Verify = true, true
			res, err = run(t, open(t, b, k, stream), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s := res.Steps[0]; s.WrittenChunks+s.ZeroedChunks != chunks || !s.Verified {
				t.Errorf("install with NoSkip, Verify: %+v, want %d chunks written or zeroed and verified", s, chunks)
			}
		})
	}
}

var ignoreSeconds = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Seconds" }, cmp.Ignore())

// corrupt changes one stored byte of the image's chunk n.
func corrupt(t *testing.T, b []byte, k *installtest.Key, image string, n int) []byte {
	t.Helper()
	br := open(t, b, k, false)
	chunks, err := br.Chunks(image)
	if err != nil {
		t.Fatal(err)
	}
	c := chunks[n]
	if c.StoredSize == 0 {
		t.Fatalf("chunk %d is not stored", n)
	}
	out := bytes.Clone(b)
	out[br.PayloadStart()+c.PayloadOffset+uint64(c.StoredSize)/2] ^= 0x55
	return out
}

func TestBadChunk(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(2, imageSize, cs)
	good := imageBundle(t, k, data, 0)
	// Chunk 4 is LZ4, chunk 5 raw; chunk 3 before chunk 4 is zeros, so
	// a pending run of zero chunks must be written before the error.
	for _, bad := range []int{4, 5} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("chunk=%d/stream=%v", bad, stream), func(t *testing.T) {
				b := corrupt(t, good, k, "rootfs", bad)
				target := installtest.File(t, t.TempDir(), "disk", 2<<20, 0xAA)
				_, err := run(t, open(t, b, k, stream), Config{Targets: map[string]string{"rootfs": target}}, nil)
				var ce *ChunkError
				if !errors.As(err, &ce) || !errors.Is(err, bundle.ErrChecksum) {
					t.Fatalf("install = %v, want a ChunkError wrapping ErrChecksum", err)
				}
				if ce.Chunk != bad || ce.Offset != int64(bad)*cs || ce.Step != 1 || ce.Image != "rootfs" {
					t.Errorf("ChunkError = %+v, want chunk %d at offset %d of step 1, image rootfs", ce, bad, bad*cs)
				}
				if got := ExitCode(err); got != exitcode.Corrupt {
					t.Errorf("ExitCode(%v) = %d, want %d", err, got, exitcode.Corrupt)
				}
				got := readFile(t, target)
				if !bytes.Equal(got[:bad*cs], data[:bad*cs]) {
					t.Error("the chunks before the bad one are not written")
				}
				if !bytes.Equal(got[bad*cs:], bytes.Repeat([]byte{0xAA}, len(got)-bad*cs)) {
					t.Error("the target changed from the bad chunk on")
				}
			})
		}
	}
}

func TestTruncatedStream(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(3, imageSize, cs)
	b := imageBundle(t, k, data, 0)
	br := open(t, b, k, false)
	chunks, _ := br.Chunks("rootfs")
	// Cut in the middle of chunk 7's stored bytes.
	cut := br.PayloadStart() + chunks[7].PayloadOffset + 10
	target := installtest.File(t, t.TempDir(), "disk", 2<<20, 0xAA)
	_, err := run(t, open(t, b[:cut], k, true), Config{Targets: map[string]string{"rootfs": target}}, nil)
	var ce *ChunkError
	if !errors.As(err, &ce) || !errors.Is(err, bundle.ErrTruncated) || ce.Chunk != 7 {
		t.Fatalf("install = %v, want a ChunkError for chunk 7 wrapping ErrTruncated", err)
	}
	if got := ExitCode(err); got != exitcode.Truncated {
		t.Errorf("ExitCode = %d, want %d", got, exitcode.Truncated)
	}
	got := readFile(t, target)
	if !bytes.Equal(got[:7*cs], data[:7*cs]) || got[7*cs] != 0xAA {
		t.Error("want chunks 0-6 written and nothing from chunk 7 on")
	}
	// A truncated file is refused before anything is read.
	if _, err := bundle.NewReaderAt(bytes.NewReader(b[:cut]), int64(cut), k.Trust()); !errors.Is(err, bundle.ErrTruncated) {
		t.Errorf("NewReaderAt(truncated) = %v, want ErrTruncated", err)
	}
}

// failingTarget fails every write once `left` bytes have been written:
// a power cut in the middle of an install.
type failingTarget struct {
	handlers.Target
	mu   sync.Mutex
	left int64
}

var errPowerCut = errors.New("power cut")

func (f *failingTarget) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int64(len(p)) > f.left {
		return 0, errPowerCut
	}
	f.left -= int64(len(p))
	return f.Target.WriteAt(p, off)
}

func (f *failingTarget) ZeroRange(off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n > f.left {
		return errPowerCut
	}
	f.left -= n
	return f.Target.ZeroRange(off, n)
}

func TestResume(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(4, imageSize, cs)
	b := imageBundle(t, k, data, 0)
	target := installtest.File(t, t.TempDir(), "disk", 2<<20, 0xAA)
	cfg := Config{Targets: map[string]string{"rootfs": target}}
	_, err := run(t, open(t, b, k, false), cfg, func(t handlers.Target) handlers.Target {
		return &failingTarget{Target: t, left: 10 * cs}
	})
	if !errors.Is(err, errPowerCut) || ExitCode(err) != exitcode.TargetIO {
		t.Fatalf("interrupted install = %v (exit %d), want the power cut and exit %d", err, ExitCode(err), exitcode.TargetIO)
	}
	res, err := run(t, open(t, b, k, false), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Steps[0]; s.SkippedChunks != 10 || s.WrittenChunks+s.ZeroedChunks != 12 {
		t.Errorf("resumed install: %+v, want the 10 chunks written before the cut skipped, 12 written", s)
	}
	if !bytes.Equal(readFile(t, target)[:imageSize], data) {
		t.Error("target does not hold the image after the resumed install")
	}
}

// zeroCounter counts ZeroRange calls.
type zeroCounter struct {
	handlers.Target
	calls [][2]int64
}

func (z *zeroCounter) ZeroRange(off, n int64) error {
	z.calls = append(z.calls, [2]int64{off, n})
	return z.Target.ZeroRange(off, n)
}

func TestZeroRunsCoalesce(t *testing.T) {
	k := installtest.NewKey(t)
	// Chunks: data, zero, zero, zero, data, zero, zero (short).
	data := make([]byte, 6*cs+100)
	copy(data, bytes.Repeat([]byte("x"), cs))
	copy(data[4*cs:], bytes.Repeat([]byte("y"), cs))
	b := imageBundle(t, k, data, 0)
	target := installtest.File(t, t.TempDir(), "disk", 1<<20, 0xAA)
	var z *zeroCounter
	res, err := run(t, open(t, b, k, false), Config{Targets: map[string]string{"rootfs": target}}, func(t handlers.Target) handlers.Target {
		z = &zeroCounter{Target: t}
		return z
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int64{{cs, 3 * cs}, {5 * cs, cs + 100}}
	if diff := cmp.Diff(want, z.calls); diff != "" {
		t.Errorf("ZeroRange calls (-want +got):\n%s", diff)
	}
	if s := res.Steps[0]; s.ZeroedChunks != 5 || s.ZeroedBytes != 4*cs+100 {
		t.Errorf("zeroed %d chunks, %d bytes; want 5, %d", s.ZeroedChunks, s.ZeroedBytes, 4*cs+100)
	}
	if !bytes.Equal(readFile(t, target)[:len(data)], data) {
		t.Error("target does not hold the image")
	}
}

func TestPlanChecks(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(5, imageSize, cs)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	m.SecurityVersion = 5
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: data})
	dir := t.TempDir()
	big := installtest.File(t, dir, "big", 2<<20, 0)
	small := installtest.File(t, dir, "small", imageSize-1, 0)
	sv := func(v string) string {
		p := filepath.Join(t.TempDir(), "sv")
		os.WriteFile(p, []byte(v), 0o644)
		return p
	}
	tests := []struct {
		name string
		cfg  Config
		want error
		code int
	}{
		{"ok", Config{Targets: map[string]string{"rootfs": big}}, nil, exitcode.OK},
		{"wrong board", Config{BoardName: "other", Targets: map[string]string{"rootfs": big}}, ErrIncompatible, exitcode.Incompatible},
		{"wrong revision", Config{BoardName: installtest.Board, BoardRevision: "2", Targets: map[string]string{"rootfs": big}}, nil, exitcode.OK},
		{"same security version", Config{SecurityVersionFile: sv("5\n"), Targets: map[string]string{"rootfs": big}}, nil, exitcode.OK},
		{"lower security version", Config{SecurityVersionFile: sv("6\n"), Targets: map[string]string{"rootfs": big}}, ErrRollback, exitcode.Rollback},
		{"garbled security version", Config{SecurityVersionFile: sv("six"), Targets: map[string]string{"rootfs": big}}, ErrRollback, exitcode.Rollback},
		{"target too small", Config{Targets: map[string]string{"rootfs": small}}, ErrTargetTooSmall, exitcode.TooSmall},
		{"target missing", Config{Targets: map[string]string{"rootfs": filepath.Join(dir, "nope")}}, ErrTargetMissing, exitcode.NoTarget},
		{"target unknown", Config{}, ErrTargetMissing, exitcode.NoTarget},
		{"target a directory", Config{Targets: map[string]string{"rootfs": dir}}, ErrTargetMissing, exitcode.NoTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.BoardName == "" {
				cfg.Board = board()
			}
			p, err := NewPlan(open(t, b, k, false), cfg)
			if err == nil {
				p.Close()
			}
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("NewPlan = %v, want %v", err, tt.want)
			}
			if got := ExitCode(err); got != tt.code {
				t.Errorf("ExitCode(%v) = %d, want %d", err, got, tt.code)
			}
		})
	}
}

func TestSecurityVersionRecorded(t *testing.T) {
	k := installtest.NewKey(t)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	m.SecurityVersion = 7
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: installtest.Data(6, 3*cs, cs)})
	target := installtest.File(t, t.TempDir(), "disk", 1<<20, 0)
	svf := filepath.Join(t.TempDir(), "state", "security-version")
	res, err := run(t, open(t, b, k, false), Config{SecurityVersionFile: svf, Targets: map[string]string{"rootfs": target}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ReadSecurityVersion(svf); v != 7 || err != nil || res.SecurityVersion != 7 {
		t.Errorf("ReadSecurityVersion after install = %d, %v (result %d), want 7", v, err, res.SecurityVersion)
	}
	// A failed install records nothing.
	// (Another image: chunks the target holds are skipped unread.)
	m.SecurityVersion = 9
	b = installtest.Bundle(t, k, m, cs, installtest.Image{Name: "rootfs", Data: installtest.Data(10, 3*cs, cs)})
	b = corrupt(t, b, k, "rootfs", 0)
	if _, err := run(t, open(t, b, k, false), Config{SecurityVersionFile: svf, Targets: map[string]string{"rootfs": target}}, nil); err == nil {
		t.Fatal("install of a corrupt bundle succeeded")
	}
	if v, _ := ReadSecurityVersion(svf); v != 7 {
		t.Errorf("security version after a failed install = %d, want 7", v)
	}
}

func TestNotStreamable(t *testing.T) {
	k := installtest.NewKey(t)
	m := installtest.Manifest(
		bundle.Step{Type: bundle.StepImage, Target: "b", Image: "b"},
		bundle.Step{Type: bundle.StepImage, Target: "a", Image: "a"},
	)
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "a", Data: []byte("a")}, installtest.Image{Name: "b", Data: []byte("b")})
	dir := t.TempDir()
	cfg := Config{Board: board(), Targets: map[string]string{"a": installtest.File(t, dir, "a", 4096, 0), "b": installtest.File(t, dir, "b", 4096, 0)}}
	if _, err := NewPlan(open(t, b, k, true), cfg); !errors.Is(err, ErrNotStreamable) {
		t.Errorf("NewPlan(stream) = %v, want ErrNotStreamable", err)
	}
	if _, err := run(t, open(t, b, k, false), cfg, nil); err != nil {
		t.Errorf("install from a file = %v, want success", err)
	}
}

// fakeEnv is an in-memory bootloader environment.
type fakeEnv struct{ vars map[string]string }

func (e *fakeEnv) Apply(set map[string]string, unset []string) error {
	for k, v := range set {
		e.vars[k] = v
	}
	for _, k := range unset {
		delete(e.vars, k)
	}
	return nil
}

func (e *fakeEnv) Check(set map[string]string, unset []string) error { return nil }

// TestDisk installs a bundle that partitions a disk, writes images into
// partitions through the whole disk, wipes one and sets the bootloader
// environment, all on a regular file.
func TestDisk(t *testing.T) {
	k := installtest.NewKey(t)
	boot := installtest.Data(7, 5*cs+77, cs)
	root := installtest.Data(8, 30*cs, cs)
	table := &bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
		{Name: "boot", Type: "esp", Size: 1 << 20},
		{Name: "rootfs", Type: "linux", Size: 4 << 20},
		{Name: "data", Type: "linux"},
	}}
	m := installtest.Manifest(
		bundle.Step{Type: bundle.StepPartition, Target: "disk", Table: table},
		bundle.Step{Type: bundle.StepImage, Target: "boot", Image: "boot"},
		bundle.Step{Type: bundle.StepImage, Target: "system", Image: "rootfs", Verify: true},
		bundle.Step{Type: bundle.StepWipe, Target: "data", Mode: bundle.WipeFull},
		bundle.Step{Type: bundle.StepEnv, Target: "uboot", Set: map[string]string{"bootcount": "0"}, Unset: []string{"upgrade"}},
	)
	b := installtest.Bundle(t, k, m, cs, installtest.Image{Name: "boot", Data: boot}, installtest.Image{Name: "rootfs", Data: root})
	disk := installtest.File(t, t.TempDir(), "disk.img", 16<<20, 0x5A)
	prof := &boards.Profile{
		Name:    installtest.Board,
		Storage: map[string]boards.Storage{"disk": {Paths: []string{"/nonexistent/mmcblk0", disk}}},
		Targets: map[string]boards.TargetSpec{"system": {Device: "disk", Partition: "rootfs"}},
		BootEnv: map[string]boards.BootEnv{"uboot": {Type: boards.EnvUBoot}},
	}
	env := &fakeEnv{vars: map[string]string{"upgrade": "1"}}
	var events []Event
	cfg := Config{Board: prof, Observer: func(e Event) { events = append(events, e) },
		Env: func(et EnvTarget) (EnvStore, error) {
			if et != (EnvTarget{Name: "uboot"}) {
				return nil, fmt.Errorf("env target %+v", et)
			}
			return env, nil
		}}
	p, err := NewPlan(open(t, b, k, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	info := p.Info()
	vias := []string{info.Steps[0].Via, info.Steps[1].Via, info.Steps[2].Via, info.Steps[3].Via, info.Steps[4].Via}
	if diff := cmp.Diff([]string{viaProfile, viaBundleTable, viaProfile, viaBundleTable, viaBootEnv}, vias); diff != "" {
		t.Errorf("target resolution (-want +got):\n%s", diff)
	}
	res, err := p.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := partitions.Read(f, 16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	img := readFile(t, disk)
	for _, c := range []struct {
		part string
		want []byte
	}{{"boot", boot}, {"rootfs", root}} {
		pt, ok := l.Find(c.part)
		if !ok {
			t.Fatalf("no partition %q on the disk", c.part)
		}
		if !bytes.Equal(img[pt.Start:pt.Start+int64(len(c.want))], c.want) {
			t.Errorf("partition %q does not hold its image", c.part)
		}
	}
	data, _ := l.Find("data")
	if !bundle.IsZero(img[data.Start:data.End()]) {
		t.Error("partition data is not wiped")
	}
	if diff := cmp.Diff(map[string]string{"bootcount": "0"}, env.vars); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if !res.Steps[2].Verified {
		t.Error("step 3 has Verify but was not read back")
	}
	var kinds []string
	for _, e := range events {
		if e.Type != EventProgress {
			kinds = append(kinds, e.Type)
		}
	}
	want := []string{EventPlan}
	for range 5 {
		want = append(want, EventStepStart, EventStepDone)
	}
	want = append(want, EventDone)
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// The same bundle again: the table is kept, every chunk skipped.
	p, err = NewPlan(open(t, b, k, false), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ch := p.Info().Steps[0].Changes; len(ch) != 0 {
		t.Errorf("second plan changes the table: %q", ch)
	}
	res, err = p.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps[1:3] {
		if s.WrittenChunks != 0 || s.ZeroedChunks != 0 || s.SkippedBytes == 0 {
			t.Errorf("second install of step %d: %+v, want every chunk skipped", s.Step, s)
		}
	}

	// Verify finds the device equal to the bundle, then a changed byte.
	cfg.ReadOnly = true
	if err := verify(t, b, k, cfg); err != nil {
		t.Errorf("Verify after install = %v", err)
	}
	pt, _ := l.Find("rootfs")
	img[pt.Start+3*cs+5] ^= 1
	if err := os.WriteFile(disk, img, 0o644); err != nil {
		t.Fatal(err)
	}
	err = verify(t, b, k, cfg)
	if !errors.Is(err, ErrDiffers) || ExitCode(err) != exitcode.Differs {
		t.Errorf("Verify of a changed device = %v, want ErrDiffers", err)
	}
}

func verify(t *testing.T, b []byte, k *installtest.Key, cfg Config) error {
	p, err := NewPlan(open(t, b, k, true), cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Verify(context.Background())
	if err != nil && res.Differs != 1 {
		t.Errorf("Verify: %d chunks differ, want 1", res.Differs)
	}
	if err != nil && (res.Differences[0].Chunk != 3 || res.Differences[0].Image != "rootfs") {
		t.Errorf("Verify: first difference %+v, want rootfs chunk 3", res.Differences[0])
	}
	return err
}

// TestSkipUnread shows that a chunk the target already holds is neither
// read nor decoded: a damaged copy of it in the bundle does not matter,
// since the target's bytes match the signed hash.
func TestSkipUnread(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(15, 10*cs, cs)
	good := imageBundle(t, k, data, 0)
	bad := corrupt(t, good, k, "rootfs", 2)
	for _, stream := range []bool{false, true} {
		target := installtest.File(t, t.TempDir(), "disk", 1<<20, 0)
		cfg := Config{Targets: map[string]string{"rootfs": target}}
		if _, err := run(t, open(t, good, k, stream), cfg, nil); err != nil {
			t.Fatal(err)
		}
		res, err := run(t, open(t, bad, k, stream), cfg, nil)
		if err != nil || res.Steps[0].SkippedChunks != 10 {
			t.Errorf("stream=%v: install over the same image with chunk 2 damaged = %v, %+v; want all 10 chunks skipped", stream, err, res)
		}
	}
}
