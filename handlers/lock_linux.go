package handlers

import (
	"os"

	"golang.org/x/sys/unix"
)

// errWouldBlock is what lockFile returns when another holds the lock.
var errWouldBlock error = unix.EWOULDBLOCK

// lockFile takes flock(2) on f without waiting.
func lockFile(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err != unix.EINTR {
			return err
		}
	}
}
