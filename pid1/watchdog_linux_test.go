package pid1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWatchdogFile drives the Linux device code against a plain file
// standing for /dev/watchdog: pets are writes; the timeout ioctl fails
// (ENOTTY) and the requested timeout is kept.
func TestWatchdogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dev, err := OpenWatchdog(path)
	if err != nil {
		t.Fatalf("OpenWatchdog = %v", err)
	}
	if _, err := dev.SetTimeout(5 * time.Second); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("SetTimeout on a plain file = %v, want ENOTTY", err)
	}
	w := NewWatchdog(dev, 80*time.Millisecond, 200*time.Millisecond, LogFunc(t.Logf))
	if w.Timeout() != 80*time.Millisecond {
		t.Errorf("Timeout() = %v, want the requested 80ms", w.Timeout())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	time.Sleep(100 * time.Millisecond)
	if size() == 0 {
		t.Errorf("no pets written while the flow is alive")
	}
	time.Sleep(300 * time.Millisecond) // past the grace
	n := size()
	time.Sleep(100 * time.Millisecond)
	if size() != n {
		t.Errorf("pets still written after the grace period (%d -> %d bytes)", n, size())
	}
	cancel()
	<-done
}

func TestOpenWatchdogMissing(t *testing.T) {
	if _, err := OpenWatchdog(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenWatchdog(missing) = %v, want ErrNotExist", err)
	}
}

func TestWatchdogSettings(t *testing.T) {
	board := func(dev string, secs int) boardPlatform {
		var b boardPlatform
		if err := json.Unmarshal([]byte(fmt.Sprintf(`{"watchdog":{"device":%q,"timeout_seconds":%d}}`, dev, secs)), &b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tt := range []struct {
		name                   string
		cfg                    Config
		board                  boardPlatform
		params                 map[string]string
		wantPath               string
		wantTimeout, wantGrace time.Duration
		wantOff                bool
	}{
		{"none", Config{}, boardPlatform{}, nil, WatchdogPath, 0, 0, false},
		{"board", Config{}, board("/dev/watchdog1", 60), nil, "/dev/watchdog1", time.Minute, 0, false},
		{"board without device", Config{}, board("", 60), nil, WatchdogPath, time.Minute, 0, false},
		{"cmdline over board", Config{}, board("", 60), map[string]string{"watchdog": "5", "watchdog_grace": "20s"}, WatchdogPath, 5 * time.Second, 20 * time.Second, false},
		{"config over all", Config{WatchdogTimeout: 2 * time.Minute, WatchdogGrace: time.Hour}, board("", 60), map[string]string{"watchdog": "5", "watchdog_grace": "20s"}, WatchdogPath, 2 * time.Minute, time.Hour, false},
		{"off", Config{}, board("", 60), map[string]string{"watchdog": "off"}, "", 0, 0, true},
		{"bad value keeps board's", Config{}, board("", 60), map[string]string{"watchdog": "soon"}, WatchdogPath, time.Minute, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, to, gr, off := watchdogSettings(tt.cfg, tt.board, tt.params, LogFunc(t.Logf))
			if p != tt.wantPath || to != tt.wantTimeout || gr != tt.wantGrace || off != tt.wantOff {
				t.Errorf("watchdogSettings(%+v, %+v, %v) = %q, %v, %v, %v, want %q, %v, %v, %v",
					tt.cfg, tt.board, tt.params, p, to, gr, off, tt.wantPath, tt.wantTimeout, tt.wantGrace, tt.wantOff)
			}
		})
	}
}

func TestEntropyReadyDoesNotBlock(t *testing.T) {
	done := make(chan bool)
	go func() { done <- EntropyReady() }()
	select {
	case ready := <-done:
		t.Logf("EntropyReady() = %v", ready)
	case <-time.After(5 * time.Second):
		t.Fatal("EntropyReady blocked")
	}
}
