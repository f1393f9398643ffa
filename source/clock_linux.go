package source

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

func setSystemClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("source: setting the clock: %w", err)
	}
	return nil
}
