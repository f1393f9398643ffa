package pid1

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWatchdog counts pets.
type fakeWatchdog struct {
	mu         sync.Mutex
	pets       int
	timeout    time.Duration // what SetTimeout grants; 0 means what was asked
	timeoutErr error
	petErr     error
}

func (f *fakeWatchdog) KeepAlive() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pets++
	return f.petErr
}

func (f *fakeWatchdog) SetTimeout(d time.Duration) (time.Duration, error) {
	if f.timeoutErr != nil {
		return 0, f.timeoutErr
	}
	if f.timeout != 0 {
		return f.timeout, nil
	}
	return d, nil
}

func (f *fakeWatchdog) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pets
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestWatchdog(t *testing.T, dev WatchdogDevice, timeout, grace time.Duration) (*Watchdog, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1000, 0)}
	w := NewWatchdog(dev, timeout, grace, LogFunc(t.Logf))
	w.now = c.now
	w.deadline = c.now().Add(w.grace)
	return w, c
}

func TestWatchdogStopsPettingWhenFlowIsSilent(t *testing.T) {
	dev := &fakeWatchdog{}
	w, c := newTestWatchdog(t, dev, 10*time.Second, time.Minute)
	type step struct {
		advance  time.Duration
		alive    bool
		aliveFor time.Duration
		wantPet  bool
	}
	for i, s := range []step{
		{advance: 0, wantPet: true},
		{advance: 30 * time.Second, wantPet: true},
		{advance: 30 * time.Second, wantPet: true}, // exactly at the deadline
		{advance: time.Second, wantPet: false},     // silent for longer than grace
		{advance: time.Second, wantPet: false},
		{alive: true, wantPet: true}, // life again
		{advance: 59 * time.Second, wantPet: true},
		{aliveFor: 10 * time.Minute, wantPet: true},
		{advance: 9 * time.Minute, wantPet: true}, // inside AliveFor's promise
		{alive: true, wantPet: true},              // a shorter promise does not shorten the deadline
		{advance: 61 * time.Second, wantPet: false},
	} {
		c.t = c.t.Add(s.advance)
		if s.alive {
			w.Alive()
		}
		if s.aliveFor != 0 {
			w.AliveFor(s.aliveFor)
		}
		before := dev.count()
		got := w.tick()
		if got != s.wantPet || (dev.count() > before) != s.wantPet {
			t.Errorf("step %d: tick() = %v (pets %d -> %d), want %v", i, got, before, dev.count(), s.wantPet)
		}
	}
}

func TestWatchdogStop(t *testing.T) {
	dev := &fakeWatchdog{}
	w, _ := newTestWatchdog(t, dev, time.Second, time.Hour)
	if !w.tick() {
		t.Fatalf("tick() = false before Stop, want true")
	}
	w.Stop()
	w.Alive()
	w.AliveFor(time.Hour)
	if w.tick() {
		t.Errorf("tick() = true after Stop, want false")
	}
}

func TestWatchdogTimeouts(t *testing.T) {
	for _, tt := range []struct {
		name         string
		dev          *fakeWatchdog
		timeout      time.Duration
		grace        time.Duration
		wantTimeout  time.Duration
		wantGrace    time.Duration
		wantInterval time.Duration
	}{
		{"defaults", &fakeWatchdog{}, 0, 0, DefaultWatchdogTimeout, DefaultWatchdogGrace, DefaultWatchdogTimeout / 4},
		{"driver rounds", &fakeWatchdog{timeout: 8 * time.Second}, 5 * time.Second, time.Minute, 8 * time.Second, time.Minute, 2 * time.Second},
		{"driver refuses", &fakeWatchdog{timeoutErr: errors.New("ENOTTY")}, 20 * time.Second, time.Minute, 20 * time.Second, time.Minute, 5 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWatchdog(tt.dev, tt.timeout, tt.grace, LogFunc(t.Logf))
			if w.Timeout() != tt.wantTimeout || w.Grace() != tt.wantGrace || w.Interval() != tt.wantInterval {
				t.Errorf("NewWatchdog(%v, %v): timeout %v grace %v interval %v, want %v %v %v",
					tt.timeout, tt.grace, w.Timeout(), w.Grace(), w.Interval(), tt.wantTimeout, tt.wantGrace, tt.wantInterval)
			}
		})
	}
}

func TestNilWatchdog(t *testing.T) {
	var w *Watchdog
	w.Alive()
	w.AliveFor(time.Minute)
	w.Stop()
	w.Run(context.Background())
	if w.Timeout() != 0 || w.Grace() != 0 || w.Interval() != 0 {
		t.Errorf("nil Watchdog reports durations")
	}
}

// TestWatchdogPetErrorsLoggedOnce keeps a failing device from flooding the
// console.
func TestWatchdogPetErrorsLoggedOnce(t *testing.T) {
	var lines []string
	log := LogFunc(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) })
	dev := &fakeWatchdog{petErr: errors.New("EIO")}
	w := NewWatchdog(dev, time.Second, time.Hour, log)
	for range 5 {
		w.tick()
	}
	var n int
	for _, l := range lines {
		if strings.Contains(l, "EIO") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("5 failing pets logged %d lines about it, want 1: %q", n, lines)
	}
}

// TestWatchdogRun runs the real loop with short durations: pets come while
// the flow is alive, and stop after the grace period.
func TestWatchdogRun(t *testing.T) {
	dev := &fakeWatchdog{}
	w := NewWatchdog(dev, 40*time.Millisecond, 150*time.Millisecond, LogFunc(t.Logf))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(5 * time.Second)
	for dev.count() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("Run petted %d times in 5s, want 3", dev.count())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// No Alive from here: the pets must stop once the grace is over.
	time.Sleep(300 * time.Millisecond)
	stopped := dev.count()
	time.Sleep(100 * time.Millisecond)
	if got := dev.count(); got != stopped {
		t.Errorf("Run still petting after the grace period: %d -> %d", stopped, got)
	}
	w.Alive()
	time.Sleep(100 * time.Millisecond)
	if got := dev.count(); got == stopped {
		t.Errorf("Run did not resume petting after Alive")
	}
}
