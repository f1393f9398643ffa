package rescue

import (
	"context"
	"time"
)

// polledKey is a button read by polling its level (a GPIO line): the seam
// the GPIO reader plugs into, and what its tests drive.
type polledKey struct {
	read  func() (bool, error)
	close func() error
	every time.Duration
}

func (k *polledKey) Pressed() (bool, error) { return k.read() }

func (k *polledKey) WaitRelease(ctx context.Context, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		held, err := k.read()
		if err != nil || !held {
			return err == nil, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		t := time.NewTimer(min(k.every, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

func (k *polledKey) Close() error {
	if k.close == nil {
		return nil
	}
	return k.close()
}
