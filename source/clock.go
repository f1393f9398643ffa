package source

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// BuildTime is when the binary was built, the first floor for the clock of
// a device without a real-time clock (which boots in 1970, where no
// certificate is valid yet). Set it at link time, as RFC 3339 or Unix
// seconds:
//
//	go build -ldflags "-X github.com/lifeboat-updater/lifeboat/source.BuildTime=$(date -u +%s)"
var BuildTime string

// ParseBuildTime parses BuildTime's format (RFC 3339 or Unix seconds); the
// empty string gives the zero time.
func ParseBuildTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("source: build time %q: %w", s, err)
	}
	return t, nil
}

// Clock is the wall clock that certificate checks use. Set is only ever
// called to move it forward.
type Clock interface {
	Now() time.Time
	Set(time.Time) error
}

// SystemClock is the system's real-time clock; Set needs CAP_SYS_TIME
// (PID 1 in the rescue has it). Use it in the rescue so that the whole
// system, not only this package, gets a plausible date.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Set sets CLOCK_REALTIME (see clock_linux.go).
func (SystemClock) Set(t time.Time) error { return setSystemClock(t) }

// processClock is the default: it reads the system clock and keeps any
// correction inside this process, so a host's clock is never touched.
type processClock struct{}

func (processClock) Now() time.Time      { return time.Now() }
func (processClock) Set(time.Time) error { return nil }

// floorClock is a Clock that never reads earlier than the highest floor it
// was given. The floor advances with the monotonic clock, which setting
// the wall clock does not disturb.
type floorClock struct {
	base Clock

	mu    sync.Mutex
	floor time.Time // wall time at...
	at    time.Time // ...this moment (monotonic reading)
}

func (f *floorClock) Now() time.Time {
	n := f.base.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.floor.IsZero() {
		return n
	}
	if fl := f.floor.Add(time.Since(f.at)); fl.After(n) {
		return fl
	}
	return n
}

// raise moves the clock forward to t if t is later than now; it reports
// whether it did, and the error from setting the base clock (the floor is
// kept in either case).
func (f *floorClock) raise(t time.Time) (bool, error) {
	if t.IsZero() || !t.After(f.Now()) {
		return false, nil
	}
	f.mu.Lock()
	f.floor, f.at = t, time.Now()
	f.mu.Unlock()
	if f.base.Now().Before(t) {
		return true, f.base.Set(t)
	}
	return true, nil
}
