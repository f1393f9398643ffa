package source

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a bounded exponential backoff: wait Initial, then twice as
// long each time up to Max, with ±20% jitter so that a fleet of devices
// does not retry in step; give up after Attempts tries.
type Backoff struct {
	// Initial is the first wait; 500 ms when zero.
	Initial time.Duration
	// Max caps each wait; 30 s when zero.
	Max time.Duration
	// Attempts is how many tries are made before giving up (the first try
	// counts); 6 when zero, no limit when negative (then only the context
	// ends the retries).
	Attempts int
}

func (b Backoff) attempts() int {
	if b.Attempts == 0 {
		return 6
	}
	return b.Attempts
}

// exhausted reports whether try (0-based) was the last allowed.
func (b Backoff) exhausted(try int) bool {
	n := b.attempts()
	return n > 0 && try+1 >= n
}

// Delay returns the wait after failed try number n (0-based).
func (b Backoff) Delay(n int) time.Duration {
	d, max := b.Initial, b.Max
	if d <= 0 {
		d = 500 * time.Millisecond
	}
	if max <= 0 {
		max = 30 * time.Second
	}
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	// Jitter from math/rand/v2: never waits for kernel entropy.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
