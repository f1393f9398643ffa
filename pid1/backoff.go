package pid1

import "time"

// Backoff spaces out retries of a failing flow: Initial, then doubling up to
// Max. A device left alone keeps retrying forever, at most Max apart.
type Backoff struct {
	Initial, Max time.Duration
	next         time.Duration
}

// DefaultBackoff is what Run uses between flow attempts.
func DefaultBackoff() *Backoff {
	return &Backoff{Initial: time.Second, Max: time.Minute}
}

// Next returns the wait before the next attempt and lengthens the one after.
func (b *Backoff) Next() time.Duration {
	if b.next <= 0 {
		b.next = b.Initial
	}
	d := b.next
	if d > b.Max {
		d = b.Max
	}
	b.next = d * 2
	return d
}

// Reset starts over at Initial (after an attempt that got somewhere).
func (b *Backoff) Reset() { b.next = 0 }
