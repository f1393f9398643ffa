package client

import (
	"context"
	"errors"
	"time"
)

// Retry calls f until it succeeds, fails for good (ErrRefused,
// ErrUnknownRun) or ctx ends. Between tries it waits what the station asked
// for (Retry-After: the identity pool ran out) or, when the station could
// not be reached, 1 s doubling to 30 s. wait, when not nil, is told each
// error and the wait before the next try: the rescue shows it on the
// console ("station: serial range LB-%06d 1-100 is used up; asking again
// in 10 s").
func Retry(ctx context.Context, f func(context.Context) error, wait func(err error, next time.Duration)) error {
	backoff := time.Second
	for {
		err := f(ctx)
		if err == nil || errors.Is(err, ErrRefused) || errors.Is(err, ErrUnknownRun) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		d := backoff
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			d = e.RetryAfter
		} else {
			backoff = min(2*backoff, 30*time.Second)
		}
		if wait != nil {
			wait(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
