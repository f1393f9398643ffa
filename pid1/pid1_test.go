package pid1

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lifeboat-updater/lifeboat/pid1/pid1test"
)

// lines is a test log sink.
func TestSuperviseRetriesThenReboots(t *testing.T) {
	log := &pid1test.Log{}
	var reboots int
	env := &Env{Log: log, reboot: func() error { reboots++; return errors.New("not PID 1") }}
	dev := &fakeWatchdog{}
	env.Watchdog = NewWatchdog(dev, time.Second, time.Hour, log)

	var attempts int
	flow := func(ctx context.Context, env *Env) error {
		attempts++
		switch attempts {
		case 1:
			return errors.New("no bundle")
		case 2:
			panic("bug")
		case 3:
			return errors.New("network down")
		}
		return nil
	}
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) { slept = append(slept, d) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		supervise(ctx, env, flow, &Backoff{Initial: time.Second, Max: time.Minute}, sleep)
		close(done)
	}()
	// After the reboot fails, supervise waits for the watchdog: only a
	// cancelled context (a test) ends it.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "waiting for the watchdog") {
		if time.Now().After(deadline) {
			t.Fatalf("supervise did not get to the reboot; log:\n%s", log)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("supervise returned after a failed reboot, want it to wait")
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	<-done

	if attempts != 4 || reboots != 1 {
		t.Errorf("attempts %d, reboots %d, want 4, 1", attempts, reboots)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, slept); diff != "" {
		t.Errorf("backoff waits mismatch (-want +got):\n%s", diff)
	}
	for _, want := range []string{"attempt 1 failed: no bundle", "attempt 2 failed: pid1: flow panicked: bug", "attempt 3 failed: network down", "done, rebooting", "reboot failed: not PID 1"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if env.Watchdog.tick() {
		t.Errorf("watchdog still petted after a failed reboot, want it let go")
	}
}

func TestSuperviseEndsWithContext(t *testing.T) {
	env := &Env{Log: LogFunc(t.Logf)}
	ctx, cancel := context.WithCancel(context.Background())
	flow := func(ctx context.Context, env *Env) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	supervise(ctx, env, flow, DefaultBackoff(), func(context.Context, time.Duration) { t.Error("slept after cancel") })
}

func TestRunFlowPanic(t *testing.T) {
	err := runFlow(context.Background(), func(context.Context, *Env) error { panic(errors.New("boom")) }, &Env{})
	if !errors.Is(err, ErrFlowPanic) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("runFlow(panicking flow) = %v, want ErrFlowPanic with the value", err)
	}
}

func TestSleepAliveFeedsWatchdog(t *testing.T) {
	dev := &fakeWatchdog{}
	env := &Env{Log: LogFunc(t.Logf)}
	env.Watchdog = NewWatchdog(dev, time.Second, 40*time.Millisecond, env.Log)
	start := time.Now()
	sleepAlive(env)(context.Background(), 200*time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("sleepAlive returned after %v, want 200ms", d)
	}
	if !env.Watchdog.tick() {
		t.Errorf("watchdog silent after a 200ms sleep with a 40ms grace: sleepAlive did not call Alive")
	}
}

func TestDefaultFlow(t *testing.T) {
	log := &pid1test.Log{}
	env := &Env{Log: log, Params: map[string]string{"b": "1", "a": ""}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- DefaultFlow(ctx, env) }()
	for !strings.Contains(log.String(), "params:") {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("DefaultFlow = %v, want context.Canceled", err)
	}
	if got := log.String(); !strings.HasPrefix(got, ReadyMarker) || !strings.Contains(got, "\nparams: a b=1") {
		t.Errorf("DefaultFlow log = %q, want the marker then the params", got)
	}
}

func TestNewLogger(t *testing.T) {
	var console, kmsg bytes.Buffer
	l := NewLogger(&console, &kmsg)
	l.Printf("hello %d", 1)
	l.Printf("two\nlines\n")
	if want := "lifeboat: hello 1\nlifeboat: two\nlifeboat: lines\n"; console.String() != want {
		t.Errorf("console got %q, want %q", console.String(), want)
	}
	if want := "<7>lifeboat: hello 1\n<7>lifeboat: two\n<7>lifeboat: lines\n"; kmsg.String() != want {
		t.Errorf("kmsg got %q, want %q", kmsg.String(), want)
	}
	NewLogger(nil, nil).Printf("nowhere") // must not panic
}

func TestReadBoardPlatform(t *testing.T) {
	for _, tt := range []struct {
		in          string
		wantModules []string
		wantWD      string
		wantErr     bool
	}{
		{"", nil, "", false},
		{`{"name":"qemu","modules":["virtio_blk","i6300esb"],"watchdog":{"device":"/dev/watchdog0","timeout_seconds":60}}`, []string{"virtio_blk", "i6300esb"}, "/dev/watchdog0", false},
		{`{"name":"qemu"}`, nil, "", false},
		{`{"modules":`, nil, "", true},
	} {
		got, err := readBoardPlatform([]byte(tt.in))
		var wd string
		if got.Watchdog != nil {
			wd = got.Watchdog.Device
		}
		if diff := cmp.Diff(tt.wantModules, got.Modules); diff != "" || wd != tt.wantWD || (err != nil) != tt.wantErr {
			t.Errorf("readBoardPlatform(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, got.Modules, wd, err, tt.wantModules, tt.wantWD, tt.wantErr)
		}
	}
}

// TestReadBoardPlatformRealProfiles reads the project's own board profiles.
func TestReadBoardPlatformRealProfiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "boards", "*.json"))
	files = append(files, filepath.Join("testdata", "board.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := readBoardPlatform(b)
		if err != nil {
			t.Errorf("readBoardPlatform(%s) = %v", f, err)
		}
		if len(p.Modules) == 0 {
			t.Logf("%s lists no modules", f)
		}
	}
}

func TestBlockDevices(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"vda", "vda1", "sda", "loop0"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "vda1", "partition"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := BlockDevices(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"loop0", "sda", "vda"}, got); diff != "" {
		t.Errorf("BlockDevices mismatch (-want +got):\n%s", diff)
	}
}

func TestEnvExec(t *testing.T) {
	env := &Env{execMu: new(sync.RWMutex)}
	if err := env.Exec(exec.Command("true")); err != nil {
		t.Errorf("Exec(true) = %v", err)
	}
}

func TestUptime(t *testing.T) {
	p := filepath.Join(t.TempDir(), "uptime")
	if err := os.WriteFile(p, []byte("3.02 5.10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := uptime(p), " (3.02s after kernel start)"; got != want {
		t.Errorf("uptime(%q) = %q, want %q", p, got, want)
	}
	if got := uptime(filepath.Join(t.TempDir(), "none")); got != "" {
		t.Errorf("uptime(missing) = %q, want empty", got)
	}
}
