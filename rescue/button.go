package rescue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
)

// ErrNoButton reports that the board's recovery button could not be
// found (no input device with the key, no GPIO chip).
var ErrNoButton = errors.New("rescue: recovery button not found")

// Key is a recovery button as the rescue reads it: a key of a Linux input
// device (evdev) or a GPIO line.
type Key interface {
	// Pressed reports whether the button is held now.
	Pressed() (bool, error)
	// WaitRelease waits up to d for the button to be let go; it reports
	// false if it is still held after d.
	WaitRelease(ctx context.Context, d time.Duration) (bool, error)
	Close() error
}

// Hold is what the button said at power-on.
type Hold struct {
	Held     bool          // pressed when the rescue looked
	Duration time.Duration // how long it was held (up to Long)
	Long     bool          // held for the board's long_seconds or more
	Device   string        // where it was read
}

func (h Hold) String() string {
	if !h.Held {
		return "not held"
	}
	if h.Long {
		return fmt.Sprintf("held %.1fs (long) on %s", h.Duration.Seconds(), h.Device)
	}
	// The hold began at power-on, before the rescue could look: what it
	// measured is the rest of it.
	return fmt.Sprintf("held at power-on, let go %.1fs later (short) on %s", h.Duration.Seconds(), h.Device)
}

// MeasureHold reads a button held at power-on: if k is pressed, it calls
// onPress (if not nil: to tell the person holding it what comes next),
// then waits until it is let go or held for long, whichever comes first,
// so that a long hold is acted on without waiting for the release. now is
// the clock (time.Now).
func MeasureHold(ctx context.Context, k Key, long time.Duration, now func() time.Time, onPress func()) (Hold, error) {
	start := now()
	pressed, err := k.Pressed()
	if err != nil || !pressed {
		return Hold{}, err
	}
	if onPress != nil {
		onPress()
	}
	released, err := k.WaitRelease(ctx, long)
	if err != nil {
		return Hold{}, err
	}
	d := now().Sub(start)
	if !released || d >= long {
		return Hold{Held: true, Duration: d, Long: true}, nil
	}
	return Hold{Held: true, Duration: d}, nil
}

// OpenButton opens the board's recovery button; see the Linux version.
// wait bounds how long its device may take to appear.
var OpenButton = openButton

// MsgButtonHeld starts the line the rescue prints when it finds the
// button held.
const MsgButtonHeld = "button held at power-on on"

// readButton reads the board's button once, at the start of the rescue.
func readButton(ctx context.Context, b *boards.Button, logf func(string, ...any)) (Hold, error) {
	wait := time.Duration(b.WaitSeconds * float64(time.Second))
	k, dev, err := OpenButton(b, wait)
	if err != nil {
		return Hold{}, err
	}
	defer k.Close()
	long := time.Duration(b.LongSeconds * float64(time.Second))
	h, err := MeasureHold(ctx, k, long, time.Now, func() {
		logf("%s %s: let go now to reinstall, keep holding %v for a factory reset", MsgButtonHeld, dev, long)
	})
	h.Device = dev
	return h, err
}
