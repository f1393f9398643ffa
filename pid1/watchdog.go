package pid1

import (
	"context"
	"sync"
	"time"
)

// Watchdog defaults: the hardware resets the board Timeout after the last
// pet; the rescue pets only while the flow has shown life within Grace.
const (
	DefaultWatchdogTimeout = 30 * time.Second
	DefaultWatchdogGrace   = 5 * time.Minute
)

// WatchdogDevice is a hardware watchdog: /dev/watchdog on Linux, a plain
// file in tests.
type WatchdogDevice interface {
	// KeepAlive restarts the hardware countdown.
	KeepAlive() error
	// SetTimeout asks for a countdown of d and returns the one the
	// hardware took (drivers round, and clamp to their range).
	SetTimeout(d time.Duration) (time.Duration, error)
}

// Watchdog pets a hardware watchdog for as long as the flow shows it is
// alive.
//
// The flow calls Alive whenever it makes progress (a chunk written, a
// source probed, a poll loop turned). Run pets the device every quarter of
// the hardware timeout while the last Alive is younger than the grace
// period. A flow that hangs stops calling Alive: the petting stops after
// the grace period and the hardware resets the board one timeout later, so
// a stuck install gets the board rebooted into the rescue, which tries
// again. A flow that only looks stuck (a single long erase) says so first
// with AliveFor.
//
// The device is never closed with the magic character: if the rescue dies,
// the watchdog still fires.
//
// A nil *Watchdog (a board without one) accepts every call and does
// nothing.
type Watchdog struct {
	dev     WatchdogDevice
	timeout time.Duration
	grace   time.Duration
	log     Logger
	now     func() time.Time

	mu       sync.Mutex
	deadline time.Time // petting stops after this
	silent   bool      // the deadline passed and that was logged
	stopped  bool      // Stop was called: no more petting, whatever comes
	lastErr  error
}

// NewWatchdog sets the device's timeout (keeping the driver's own if the
// device refuses) and returns a Watchdog whose grace period starts now.
// Zero durations mean the defaults.
func NewWatchdog(dev WatchdogDevice, timeout, grace time.Duration, log Logger) *Watchdog {
	if timeout <= 0 {
		timeout = DefaultWatchdogTimeout
	}
	if grace <= 0 {
		grace = DefaultWatchdogGrace
	}
	got, err := dev.SetTimeout(timeout)
	switch {
	case err != nil:
		log.Printf("watchdog: cannot set a %v timeout (%v), pets every %v", timeout, err, timeout/4)
	case got > 0:
		timeout = got
	}
	w := &Watchdog{dev: dev, timeout: timeout, grace: grace, log: log, now: time.Now}
	w.deadline = w.now().Add(grace)
	return w
}

// Timeout is the hardware countdown.
func (w *Watchdog) Timeout() time.Duration {
	if w == nil {
		return 0
	}
	return w.timeout
}

// Grace is how long the flow may stay silent before the petting stops.
func (w *Watchdog) Grace() time.Duration {
	if w == nil {
		return 0
	}
	return w.grace
}

// Alive says the flow made progress: the petting goes on for another grace
// period.
func (w *Watchdog) Alive() {
	w.AliveFor(0)
}

// AliveFor says the flow is about to be busy, without a chance to call
// Alive, for up to d (or the grace period, if longer).
func (w *Watchdog) AliveFor(d time.Duration) {
	if w == nil {
		return
	}
	if d < w.grace {
		d = w.grace
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	if dl := w.now().Add(d); dl.After(w.deadline) {
		w.deadline = dl
	}
	if w.silent {
		w.log.Printf("watchdog: flow alive again, petting resumes")
		w.silent = false
	}
}

// Interval is how often Run pets the device: a quarter of the hardware
// timeout, so a late tick or two do not reset a healthy board.
func (w *Watchdog) Interval() time.Duration {
	if w == nil {
		return 0
	}
	if iv := w.timeout / 4; iv > 0 {
		return iv
	}
	return time.Millisecond
}

// Run pets the device until ctx is done. It pets once at once.
func (w *Watchdog) Run(ctx context.Context) {
	if w == nil {
		return
	}
	t := time.NewTicker(w.Interval())
	defer t.Stop()
	for {
		w.tick()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick pets the device if the flow is alive, and reports whether it did.
func (w *Watchdog) tick() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.now().After(w.deadline) {
		if !w.silent {
			w.log.Printf("watchdog: no sign of life from the flow for %v, the board resets in %v", w.grace, w.timeout)
			w.silent = true
		}
		return false
	}
	err := w.dev.KeepAlive()
	if err != nil && (w.lastErr == nil || err.Error() != w.lastErr.Error()) {
		w.log.Printf("watchdog: keepalive: %v", err)
	}
	w.lastErr = err
	return err == nil
}

// Stop ends the petting for good: the board resets one timeout later. It
// is the way out when nothing else works (reboot(2) failed).
func (w *Watchdog) Stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped, w.silent = true, true
	w.deadline = time.Time{}
}
