//go:build !linux

package source

import "time"

func setSystemClock(time.Time) error { return ErrUnsupported }
