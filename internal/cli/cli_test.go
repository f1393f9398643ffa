package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// TestMain lets the test binary act as the lifeboat command, so that tests
// and measurements can run it as a process:
//
//	go test -c -o lifeboat.test ./internal/cli
//	LIFEBOAT_TEST_MAIN=1 ./lifeboat.test install ...
func TestMain(m *testing.M) {
	if os.Getenv("LIFEBOAT_TEST_MAIN") == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const cs = bundle.MinChunkSize

// fixture is a signed bundle on disk and a target for it.
type fixture struct {
	key    *installtest.Key
	dir    string
	data   []byte
	bundle []byte
	path   string // the bundle file
	target string
}

func newFixture(t *testing.T, secVer uint64) *fixture {
	t.Helper()
	f := &fixture{key: installtest.NewKey(t), dir: t.TempDir(), data: installtest.Data(1, 20*cs+5, cs)}
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	m.SecurityVersion = secVer
	f.bundle = installtest.Bundle(t, f.key, m, cs, installtest.Image{Name: "rootfs", Data: f.data})
	f.path = f.write(t, "demo.bundle", f.bundle)
	f.target = installtest.File(t, f.dir, "disk.img", 2<<20, 0xAA)
	return f
}

func (f *fixture) write(t *testing.T, name string, b []byte) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// args are the flags every test passes.
func (f *fixture) args(cmd string, extra ...string) []string {
	return f.argsKeys(f.key.Dir, cmd, extra...)
}

func (f *fixture) argsKeys(keys, cmd string, extra ...string) []string {
	a := []string{cmd, "--keys", keys, "--board-name", installtest.Board, "--target", "rootfs=" + f.target, "--progress", "plain"}
	return append(a, extra...)
}

type result struct {
	code           int
	stdout, stderr string
}

func lifeboat(stdin []byte, args ...string) result {
	var out, errb bytes.Buffer
	code := MainWith(context.Background(), args, bytes.NewReader(stdin), &out, &errb, Deps{})
	return result{code, out.String(), errb.String()}
}

// check asserts the exit code and, for failures, one line on stderr
// "lifeboat: ..." holding reason.
func (r result) check(t *testing.T, code int, reason string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	if code == 0 {
		if r.stderr != "" {
			t.Errorf("stderr = %q, want nothing", r.stderr)
		}
		return
	}
	t.Logf("exit %d: %s", r.code, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "lifeboat: ") || !strings.Contains(lines[0], reason) {
		t.Errorf("stderr = %q, want one line \"lifeboat: ...%s...\"", r.stderr, reason)
	}
}

func TestInstall(t *testing.T) {
	f := newFixture(t, 0)
	r := lifeboat(nil, f.args("install", f.path)...)
	r.check(t, 0, "")
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got[:len(f.data)], f.data) {
		t.Fatal("target does not hold the image")
	}
	for _, want := range []string{"bundle demo 1.0", "step 1/1: image \"rootfs\"", "[1/1] image rootfs: done", "installed in"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	// From standard input, flags after the bundle, skipping everything.
	r = lifeboat(f.bundle, append([]string{"install", "-"}, f.args("")[1:]...)...)
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "skipped 21 chunks") {
		t.Errorf("second install: stdout lacks \"skipped 21 chunks\":\n%s", r.stdout)
	}
	lifeboat(nil, f.args("verify", f.path)...).check(t, 0, "")
}

func TestPlanWritesNothing(t *testing.T) {
	f := newFixture(t, 0)
	r := lifeboat(nil, f.args("plan", f.path)...)
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "nothing written") || !strings.Contains(r.stdout, f.target) {
		t.Errorf("plan output:\n%s", r.stdout)
	}
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got, bytes.Repeat([]byte{0xAA}, len(got))) {
		t.Error("plan wrote to the target")
	}
}

func TestFailures(t *testing.T) {
	f := newFixture(t, 5)
	other := installtest.NewKey(t)
	tampered := bytes.Replace(f.bundle, []byte(`"version": "1.0"`), []byte(`"version": "1.1"`), 1)
	if bytes.Equal(tampered, f.bundle) {
		t.Fatal("no version in the manifest to change")
	}
	br, err := bundle.NewReaderAt(bytes.NewReader(f.bundle), int64(len(f.bundle)), f.key.Trust())
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := br.Chunks("rootfs")
	badChunk := slicesClone(f.bundle)
	badChunk[br.PayloadStart()+chunks[2].PayloadOffset+7] ^= 1
	truncated := f.bundle[:br.PayloadStart()+chunks[6].PayloadOffset+100]
	sv := f.write(t, "sv", []byte("6\n"))
	small := installtest.File(t, f.dir, "small.img", 20*cs, 0)

	tests := []struct {
		name   string
		args   []string
		stdin  []byte
		code   int
		reason string
	}{
		{"no command", nil, nil, exitcode.Usage, "no command"},
		{"unknown command", []string{"frobnicate"}, nil, exitcode.Usage, "unknown command"},
		{"unknown flag", f.args("install", "--colour", f.path), nil, exitcode.Usage, "colour"},
		{"two bundles", f.args("install", f.path, f.path), nil, exitcode.Usage, "one BUNDLE"},
		{"bad target flag", f.args("install", "--target", "rootfs", f.path), nil, exitcode.Usage, "NAME=PATH"},
		{"no bundle file", f.args("install", filepath.Join(f.dir, "none")), nil, exitcode.Usage, "no such file"},
		{"no board", []string{"install", "--keys", f.key.Dir, f.path}, nil, exitcode.Usage, "no board profile"},
		{"unknown builtin board", f.args("install", "--board", "nosuchboard", f.path), nil, exitcode.Usage, "no built-in profile"},
		{"no trust store", f.argsKeys(filepath.Join(f.dir, "nokeys"), "install", f.path), nil, exitcode.Untrusted, "trust store"},
		{"unknown key", f.argsKeys(other.Dir, "install", f.path), nil, exitcode.Untrusted, "not signed by a trusted key"},
		{"manifest changed", f.args("install", f.write(t, "tampered", tampered)), nil, exitcode.BadSignature, "signature does not verify"},
		{"chunk changed", f.args("install", f.write(t, "badchunk", badChunk)), nil, exitcode.Corrupt, "chunk 2"},
		{"truncated file", f.args("install", f.write(t, "truncated", truncated)), nil, exitcode.Truncated, "truncated"},
		{"truncated stream", f.args("install", "-"), truncated, exitcode.Truncated, "chunk 6"},
		{"wrong board", f.args("install", "--board-name", "other:1", f.path), nil, exitcode.Incompatible, "this board is other:1"},
		{"lower security version", f.args("install", "--security-version-file", sv, f.path), nil, exitcode.Rollback, "security version 5, the device has 6"},
		{"target missing", f.args("install", "--target", "rootfs="+filepath.Join(f.dir, "none.img"), f.path), nil, exitcode.NoTarget, "target not found"},
		{"target too small", f.args("install", "--target", "rootfs="+small, f.path), nil, exitcode.TooSmall, "target too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(f.target, bytes.Repeat([]byte{0xAA}, 2<<20), 0o644)
			lifeboat(tt.stdin, tt.args...).check(t, tt.code, tt.reason)
			got, _ := os.ReadFile(f.target)
			switch tt.name {
			case "chunk changed":
				if !bytes.Equal(got[:2*cs], f.data[:2*cs]) || !bytes.Equal(got[2*cs:], bytes.Repeat([]byte{0xAA}, len(got)-2*cs)) {
					t.Error("want chunks 0-1 written and the target unchanged from chunk 2 on")
				}
			case "truncated stream":
				if !bytes.Equal(got[:6*cs], f.data[:6*cs]) || !bytes.Equal(got[6*cs:], bytes.Repeat([]byte{0xAA}, len(got)-6*cs)) {
					t.Error("want chunks 0-5 written and the target unchanged from chunk 6 on")
				}
			default:
				if !bytes.Equal(got, bytes.Repeat([]byte{0xAA}, len(got))) {
					t.Error("the target changed")
				}
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestReadOnlyTarget(t *testing.T) {
	installtest.NeedRoot(t)
	f := newFixture(t, 0)
	dev := installtest.Loop(t, f.target, true)
	lifeboat(nil, f.args("install", "--target", "rootfs="+dev, f.path)...).check(t, exitcode.TargetIO, "read-only")
}

func TestVerifyDiffers(t *testing.T) {
	f := newFixture(t, 0)
	lifeboat(nil, f.args("install", f.path)...).check(t, 0, "")
	b, _ := os.ReadFile(f.target)
	b[3*cs+1] ^= 1
	b[7*cs] ^= 1
	os.WriteFile(f.target, b, 0o644)
	r := lifeboat(nil, f.args("verify", f.path)...)
	r.check(t, exitcode.Differs, "2 of 21 chunks")
	for _, want := range []string{`differs: step 1 image "rootfs" chunk 3 at offset 196608`, `chunk 7 at offset 458752`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestVerifyAppliesNoPolicy: a device whose security version is above the
// bundle's still verifies against it (a host that installed a newer
// bundle once must not make verify refuse an older one): verify compares
// bytes, the rollback check is install's.
func TestVerifyAppliesNoPolicy(t *testing.T) {
	f := newFixture(t, 0)
	lifeboat(nil, f.args("install", f.path)...).check(t, 0, "")
	sv := filepath.Join(f.dir, "sv")
	os.WriteFile(sv, []byte("9\n"), 0o644)
	lifeboat(nil, f.args("verify", "--security-version-file", sv, f.path)...).check(t, 0, "")
	lifeboat(nil, f.args("plan", "--security-version-file", sv, f.path)...).check(t, exitcode.Rollback, "the device has 9")
}

// TestEvents runs the command as a process writing events to fd 3.
func TestEvents(t *testing.T) {
	f := newFixture(t, 0)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], f.args("install", "--events", "fd:3", f.path)...)
	cmd.Env = append(os.Environ(), "LIFEBOAT_TEST_MAIN=1")
	cmd.ExtraFiles = []*os.File{pw}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var kinds []string
	var last map[string]any
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		if ev["event"] != "progress" {
			kinds = append(kinds, ev["event"].(string))
		}
		last = ev
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lifeboat install: %v\n%s", err, stderr.String())
	}
	if diff := cmp.Diff([]string{"start", "plan", "step-start", "step-done", "done"}, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if last["written_bytes"] == nil || last["duration_seconds"] == nil {
		t.Errorf("done event %v lacks written_bytes or duration_seconds", last)
	}

	// A failure ends with an error event.
	bad := slicesClone(f.bundle)
	bad[len(bad)-2] ^= 1 // in the last chunk, 5 random bytes stored raw
	os.WriteFile(f.target, bytes.Repeat([]byte{0xAA}, 2<<20), 0o644)
	events := filepath.Join(f.dir, "events.jsonl")
	lifeboat(nil, f.args("install", "--events", events, f.write(t, "bad", bad))...).check(t, exitcode.Corrupt, "checksum")
	b, _ := os.ReadFile(events)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var ev map[string]any
	json.Unmarshal([]byte(lines[len(lines)-1]), &ev)
	want := map[string]any{"event": "error", "step": 1.0, "image": "rootfs", "chunk": 20.0, "offset": float64(20 * cs), "exit_code": 5.0}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("error event %s = %v, want %v (event %s)", k, ev[k], v, lines[len(lines)-1])
		}
	}
	if r, _ := ev["reason"].(string); !strings.Contains(r, "checksum") {
		t.Errorf("error event reason %q", r)
	}
}

func TestHelp(t *testing.T) {
	r := lifeboat(nil, "install", "-h")
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "--no-skip") && !strings.Contains(r.stdout, "-no-skip") {
		t.Errorf("install -h:\n%s", r.stdout)
	}
}

func TestURL(t *testing.T) {
	f := newFixture(t, 0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/demo.bundle" {
			http.NotFound(w, r)
			return
		}
		w.Write(f.bundle)
	}))
	defer srv.Close()
	lifeboat(nil, f.args("install", srv.URL+"/demo.bundle")...).check(t, 0, "")
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got[:len(f.data)], f.data) {
		t.Error("target does not hold the image")
	}
	lifeboat(nil, f.args("install", srv.URL+"/other.bundle")...).check(t, exitcode.Internal, "404")
}

// TestURLResume drops the connection half way through the bundle: the
// install resumes with a Range request and completes.
func TestURLResume(t *testing.T) {
	f := newFixture(t, 0)
	var requests, ranged atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(f.bundle)))
			w.Header().Set("ETag", `"v1"`)
			w.Write(f.bundle[:len(f.bundle)/2])
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "demo.bundle", time.Time{}, bytes.NewReader(f.bundle))
	}))
	defer srv.Close()
	lifeboat(nil, f.args("install", srv.URL+"/demo.bundle")...).check(t, 0, "")
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got[:len(f.data)], f.data) {
		t.Error("target does not hold the image")
	}
	if ranged.Load() == 0 {
		t.Errorf("no Range request after the drop (%d requests)", requests.Load())
	}
}

func TestBoardProfile(t *testing.T) {
	f := newFixture(t, 3)
	sv := filepath.Join(f.dir, "state", "sv")
	profile := fmt.Sprintf(`{"name": %q, "storage": {"disk": [%q]}, "targets": {"rootfs": {"device": "disk", "offset": 4096}},
		"security_version_file": %q}`, installtest.Board, f.target, sv)
	board := f.write(t, "board.json", []byte(profile))
	r := lifeboat(nil, "install", "--keys", f.key.Dir, "--board", board, "--on-device", f.path)
	r.check(t, 0, "")
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got[4096:4096+len(f.data)], f.data) {
		t.Error("target does not hold the image at offset 4096")
	}
	if b, _ := os.ReadFile(sv); string(b) != "3\n" {
		t.Errorf("security version file holds %q, want 3", b)
	}
	// The built-in QEMU profile is for another board.
	lifeboat(nil, "plan", "--keys", f.key.Dir, "--board", "qemu-x86_64", f.path).check(t, exitcode.Incompatible, "this board is qemu-x86_64:1")
	// A broken profile is a usage error.
	lifeboat(nil, "plan", "--keys", f.key.Dir, "--board", f.write(t, "bad.json", []byte(`{"name": ""}`)), f.path).check(t, exitcode.Usage, "no name")
}

// TestHostNeverUsesProfileDevices: a profile names the board's devices and
// its security version file. Run on a host (--board without --on-device),
// Lifeboat writes only what the command line names, and keeps no security
// version of the board on the host.
func TestHostNeverUsesProfileDevices(t *testing.T) {
	f := newFixture(t, 3)
	sv := filepath.Join(f.dir, "state", "sv")
	decoy := f.write(t, "decoy.img", make([]byte, 1<<20))
	profile := fmt.Sprintf(`{"name": %q, "storage": {"disk": [%q]}, "targets": {"rootfs": {"device": "disk", "offset": 4096}, "raw": {"path": %q}},
		"bootenv": {"env": {"type": "uboot", "path": %q}}, "security_version_file": %q}`, installtest.Board, decoy, decoy, decoy, sv)
	board := f.write(t, "board.json", []byte(profile))
	// The profile's disk is not used: the target must be named.
	r := lifeboat(nil, "install", "--keys", f.key.Dir, "--board", board, f.path)
	r.check(t, exitcode.NoTarget, "--target disk=PATH")
	// Named, it is written, and the board's security version is not
	// kept on the host.
	lifeboat(nil, "install", "--keys", f.key.Dir, "--board", board, "--target", "disk="+f.target, f.path).check(t, 0, "")
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got[4096:4096+len(f.data)], f.data) {
		t.Error("target does not hold the image at offset 4096")
	}
	if _, err := os.Stat(sv); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a host install wrote the profile's security version file: %v", err)
	}
	// Given explicitly, the security version file is used.
	own := filepath.Join(f.dir, "sv-of-this-card")
	lifeboat(nil, "install", "--keys", f.key.Dir, "--board", board, "--target", "disk="+f.target, "--security-version-file", own, f.path).check(t, 0, "")
	if b, _ := os.ReadFile(own); string(b) != "3\n" {
		t.Errorf("--security-version-file holds %q, want 3", b)
	}
	// A target and an environment the profile gives by path are the
	// board's: not used on a host either.
	m := installtest.Manifest(bundle.Step{Type: bundle.StepEnv, Target: "env", Set: map[string]string{"a": "1"}})
	b := f.write(t, "env.lfb", installtest.Bundle(t, f.key, m, 0))
	lifeboat(nil, "install", "--keys", f.key.Dir, "--board", board, b).check(t, exitcode.NoTarget, "--target env=PATH")
	if d, _ := os.ReadFile(decoy); !bytes.Equal(d, make([]byte, 1<<20)) {
		t.Error("a host install wrote the profile's own device")
	}
}

// TestTwoInstallsAtOnce runs two lifeboat processes against one target:
// the first streams its bundle from a pipe the test holds, so it is
// mid-install (planned, locked) when the second starts. The second is
// refused before it writes, with exit 11 and a line that says why; the
// first then finishes, and the target holds its image alone.
func TestTwoInstallsAtOnce(t *testing.T) {
	f := newFixture(t, 0)
	other := installtest.Data(7, 20*cs+5, cs)
	m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"})
	second := f.write(t, "other.bundle", installtest.Bundle(t, f.key, m, cs, installtest.Image{Name: "rootfs", Data: other}))

	stdin, feed := io.Pipe()
	evr, evw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	first := exec.Command(os.Args[0], f.args("install", "--events", "fd:3", "--no-skip", "-")...)
	first.Env = append(os.Environ(), "LIFEBOAT_TEST_MAIN=1")
	first.Stdin, first.ExtraFiles = stdin, []*os.File{evw}
	var stderr bytes.Buffer
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	evw.Close()
	// The header, manifest and index, and the first chunks: enough to
	// plan and start writing, not enough to finish.
	head := len(f.bundle) - 10*cs
	go feed.Write(f.bundle[:head])
	sc := bufio.NewScanner(evr)
	for sc.Scan() && !strings.Contains(sc.Text(), `"event":"plan"`) {
	}

	r := lifeboat(nil, f.args("install", second)...)
	r.check(t, exitcode.TargetIO, "being written by another install")

	go func() {
		feed.Write(f.bundle[head:])
		feed.Close()
	}()
	for sc.Scan() {
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first install: %v: %s", err, stderr.String())
	}
	got, _ := os.ReadFile(f.target)
	if !bytes.Equal(got[:len(f.data)], f.data) {
		t.Error("the target does not hold the first install's image")
	}
}
