package rescue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/network"
	"github.com/lifeboat-updater/lifeboat/pid1"
	"github.com/lifeboat-updater/lifeboat/pid1/pid1test"
	"github.com/lifeboat-updater/lifeboat/source"
)

const flowBoard = "flow-board"

// flowFixture is a board whose storage is a plain file, a trust store and
// a signed bundle that partitions the disk and writes an image.
type flowFixture struct {
	dir     string
	disk    string
	keys    string
	profile []byte
	bundle  string
	nets    atomic.Int32 // calls of the network stub
}

func newFlowFixture(t *testing.T, compatible string) *flowFixture {
	t.Helper()
	f := &flowFixture{dir: t.TempDir()}
	f.disk = filepath.Join(f.dir, "disk.img")
	if err := os.WriteFile(f.disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.disk, 8<<20); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = filepath.Join(f.dir, "keys")
	pem, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.keys, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.keys, "release.pub"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	f.profile = []byte(fmt.Sprintf(`{"name": %q, "storage": {"disk": {"paths": [%q]}}, "sources": ["http://192.0.2.1/none.lfb"]}`, flowBoard, f.disk))

	const chunk = 64 << 10
	img := make([]byte, 5*chunk)
	for i := range img {
		if (i/chunk)%2 == 0 {
			img[i] = byte(i * 7)
		}
	}
	m := bundle.Manifest{
		Product: "flow-os", Version: "2.0", SecurityVersion: 3, Compatible: []string{compatible},
		Steps: []bundle.Step{
			{Type: bundle.StepPartition, Target: "disk", Table: &bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
				{Name: "rootfs", Type: "linux", Start: 1 << 20, Size: 2 << 20},
				{Name: "data", Type: "linux"},
			}}},
			{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs", Verify: true},
		},
	}
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, m, bundle.WriterOptions{
		ChunkSize: chunk, TempDir: t.TempDir(),
		Signers: []bundle.Signer{bundle.Ed25519Signer{Key: priv}},
	})
	if _, err := w.AddImage("rootfs", bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.bundle = filepath.Join(f.dir, "flow.lfb")
	if err := os.WriteFile(f.bundle, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *flowFixture) installer(console *bytes.Buffer) *Installer {
	return &Installer{
		KeysDir:     f.keys,
		EventsPath:  filepath.Join(f.dir, "run", "events.jsonl"),
		Console:     console,
		StorageWait: time.Millisecond,
		Network: func(ctx context.Context, cfg network.Config) (*network.Result, error) {
			f.nets.Add(1)
			if cfg.IP != nil && cfg.IP.Method == network.MethodOff {
				return &network.Result{}, network.ErrDisabled
			}
			return &network.Result{}, nil
		},
		Clock:  fixedClock{},
		Rounds: source.Backoff{Initial: time.Millisecond, Attempts: 1},
		Install: func(c *install.Config) {
			c.SecurityVersionFile = filepath.Join(f.dir, "security-version")
		},
		Sync: func() {},
	}
}

func (f *flowFixture) env(log pid1.Logger, cmdline string) *pid1.Env {
	params := pid1.ParseCmdline(cmdline)
	return &pid1.Env{Log: log, Cmdline: params, Params: pid1.Params(params), BoardProfile: f.profile}
}

// fixedClock keeps the test from setting the host's clock.
type fixedClock struct{}

func (fixedClock) Now() time.Time      { return time.Now() }
func (fixedClock) Set(time.Time) error { return nil }

func serveFile(t *testing.T, path string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(path))))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(path)
}

// TestInstallerFlow installs over HTTP on a blank disk, then again on the
// installed disk: the second install writes nothing and says how many
// chunks it skipped.
func TestInstallerFlow(t *testing.T) {
	f := newFlowFixture(t, flowBoard)
	url := serveFile(t, f.bundle)
	var console bytes.Buffer
	in := f.installer(&console)

	log := &pid1test.Log{}
	if err := in.Flow(context.Background(), f.env(log, "console=ttyS0 lifeboat.url="+url+" lifeboat.events=console")); err != nil {
		t.Fatalf("Flow = %v; log:\n%s", err, log)
	}
	got := log.String()
	first := strings.SplitN(got, "\n", 2)[0]
	if want := MsgReason + ReasonBlank + " (no partition table on " + f.disk + "); action: reinstall"; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	for _, want := range []string{
		"sources (lifeboat.url): " + url,
		"network: up in",
		"installing flow-os 2.0 from " + url,
		"step 1/2: partition disk",
		"[2/2] image rootfs: done",
		MsgInstalled + "flow-os 2.0 in ",
		// The zero chunks are on the blank disk already.
		"wrote 3 chunks (196.6 kB), skipped 2 chunks (131.1 kB)",
		"security version 3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\ndone in") {
		t.Errorf("log has the install console's own summary; want only the flow's:\n%s", got)
	}
	if n := f.nets.Load(); n != 1 {
		t.Errorf("network configured %d times, want 1", n)
	}

	// Events: in the file, and on the console behind the prefix.
	b, err := os.ReadFile(in.EventsPath)
	if err != nil {
		t.Fatal(err)
	}
	fileEvents, err := ReadEvents(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	conText := console.String()
	conEvents, err := ReadEvents(strings.NewReader(conText))
	if err != nil {
		t.Fatal(err)
	}
	kinds := func(evs []map[string]any) []string {
		var out []string
		for _, e := range evs {
			if k := e["event"].(string); k != install.EventProgress {
				out = append(out, k)
			}
		}
		return out
	}
	want := []string{"reason", "start", "plan", "step-start", "step-done", "step-start", "step-done", "done"}
	if diff := cmp.Diff(want, kinds(fileEvents)); diff != "" {
		t.Errorf("events file mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, kinds(conEvents)); diff != "" {
		t.Errorf("console events mismatch (-want +got):\n%s", diff)
	}
	for _, line := range strings.Split(strings.TrimSpace(conText), "\n") {
		if !strings.HasPrefix(line, EventPrefix+"{") {
			t.Errorf("console line %q, want %q and JSON", line, EventPrefix)
		}
	}

	// Again, as after a power cut at the very end: nothing to write. The
	// network is up already, and the reason is the first attempt's.
	log2 := &pid1test.Log{}
	if err := in.Flow(context.Background(), f.env(log2, "lifeboat.url="+url)); err != nil {
		t.Fatalf("second Flow = %v; log:\n%s", err, log2)
	}
	for _, want := range []string{MsgReason + ReasonBlank, "(attempt 2)", "wrote 0 chunks (0 B), skipped 5 chunks (327.7 kB)"} {
		if !strings.Contains(log2.String(), want) {
			t.Errorf("second log lacks %q:\n%s", want, log2)
		}
	}
	if n := f.nets.Load(); n != 1 {
		t.Errorf("network configured %d times after two attempts, want 1", n)
	}

	// A new boot of the rescue sees the installed table.
	log3 := &pid1test.Log{}
	in3 := f.installer(&bytes.Buffer{})
	if err := in3.Flow(context.Background(), f.env(log3, "lifeboat.url=file:"+f.bundle)); err != nil {
		t.Fatalf("third Flow = %v; log:\n%s", err, log3)
	}
	if first := strings.SplitN(log3.String(), "\n", 2)[0]; first != MsgReason+ReasonRequested+"; action: reinstall" {
		t.Errorf("first line on an installed disk %q, want %q", first, MsgReason+ReasonRequested+"; action: reinstall")
	}
	if !strings.Contains(log3.String(), "network: not needed (local sources only)") || f.nets.Load() != 1 {
		t.Errorf("a file source brought the network up (%d calls):\n%s", f.nets.Load(), log3)
	}
}

// TestInstallerFlowFailures: each failure is one FlowError with the exit
// code the lifeboat command would give, and nothing is installed.
func TestInstallerFlowFailures(t *testing.T) {
	for _, tt := range []struct {
		name       string
		compatible string
		cmdline    func(f *flowFixture, url string) string
		setup      func(t *testing.T, f *flowFixture, in *Installer)
		stage      string
		code       int
	}{
		{
			name: "incompatible", compatible: "other-board",
			cmdline: func(f *flowFixture, url string) string { return "lifeboat.url=" + url },
			stage:   "plan", code: exitcode.Incompatible,
		},
		{
			name: "untrusted", compatible: flowBoard,
			cmdline: func(f *flowFixture, url string) string { return "lifeboat.url=" + url },
			setup: func(t *testing.T, f *flowFixture, in *Installer) {
				pub, _, err := bundle.GenerateKey(nil)
				if err != nil {
					t.Fatal(err)
				}
				pem, _ := bundle.MarshalPublicKey(pub)
				if err := os.WriteFile(filepath.Join(f.keys, "release.pub"), pem, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			stage: "bundle", code: exitcode.Untrusted,
		},
		{
			name: "no keys", compatible: flowBoard,
			cmdline: func(f *flowFixture, url string) string { return "lifeboat.url=" + url },
			setup:   func(t *testing.T, f *flowFixture, in *Installer) { in.KeysDir = filepath.Join(f.dir, "none") },
			stage:   "trust store", code: exitcode.Untrusted,
		},
		{
			name: "not found", compatible: flowBoard,
			cmdline: func(f *flowFixture, url string) string { return "lifeboat.url=" + url + ".missing" },
			stage:   "source", code: exitcode.Internal,
		},
		{
			name: "network off", compatible: flowBoard,
			cmdline: func(f *flowFixture, url string) string { return "ip=off lifeboat.url=" + url },
			stage:   "network", code: exitcode.Internal,
		},
		{
			name: "bad board profile", compatible: flowBoard,
			cmdline: func(f *flowFixture, url string) string { return "lifeboat.reason=button lifeboat.url=" + url },
			setup:   func(t *testing.T, f *flowFixture, in *Installer) { f.profile = []byte(`{"name": "x", "bogus": 1}`) },
			stage:   "board", code: exitcode.Usage,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFlowFixture(t, tt.compatible)
			in := f.installer(&bytes.Buffer{})
			if tt.setup != nil {
				tt.setup(t, f, in)
			}
			log := &pid1test.Log{}
			err := in.Flow(context.Background(), f.env(log, tt.cmdline(f, serveFile(t, f.bundle))))
			var fe *FlowError
			if !errors.As(err, &fe) || fe.Stage != tt.stage || fe.Code != tt.code {
				t.Fatalf("Flow = %v, want a FlowError of stage %q, code %d", err, tt.stage, tt.code)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || !strings.Contains(msg, fmt.Sprintf("exit %d (%s)", tt.code, exitcode.Class(tt.code))) {
				t.Errorf("error %q, want one line with the exit code and its class", msg)
			}
			if !strings.HasPrefix(log.String(), MsgReason) {
				t.Errorf("log does not start with the reason:\n%s", log)
			}
			if strings.Contains(log.String(), MsgInstalled) {
				t.Errorf("log says installed after a failure:\n%s", log)
			}
			disk, err := os.ReadFile(f.disk)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(disk, make([]byte, len(disk))) {
				t.Errorf("a failed attempt wrote to the disk")
			}
		})
	}
}

func TestInstallerReason(t *testing.T) {
	f := newFlowFixture(t, flowBoard)
	in := f.installer(&bytes.Buffer{})
	log := &pid1test.Log{}
	_ = in.Flow(context.Background(), f.env(log, `lifeboat.reason="boot count exceeded" lifeboat.url=file:/nonexistent`))
	if first := strings.SplitN(log.String(), "\n", 2)[0]; first != MsgReason+"boot count exceeded; action: reinstall" {
		t.Errorf("first line %q, want the command line's reason", first)
	}
}

func TestIPParam(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    string // Method, or "" for none
	}{
		{"console=ttyS0", ""},
		{"ip=dhcp", "dhcp"},
		{"ip=off ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:none", "static"},
		{"nfsaddrs=off", "off"},
	} {
		p, err := ipParam(pid1.ParseCmdline(tt.cmdline))
		if err != nil {
			t.Errorf("ipParam(%q) = %v", tt.cmdline, err)
			continue
		}
		got := ""
		if p != nil {
			got = p.Method.String()
		}
		if got != tt.want {
			t.Errorf("ipParam(%q) = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	var b bytes.Buffer
	w := &prefixWriter{w: &b, prefix: "> "}
	fmt.Fprint(w, "a\nb\n")
	fmt.Fprint(w, "c")
	if got, want := b.String(), "> a\n> b\n> c"; got != want {
		t.Errorf("prefixWriter wrote %q, want %q", got, want)
	}
}
