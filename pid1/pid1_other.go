//go:build !linux

package pid1

import (
	"fmt"
	"os"
)

// Run needs Linux; elsewhere it only says so.
func Run(Config) { fmt.Fprintln(os.Stderr, ErrUnsupported) }

// Reboot needs Linux.
func Reboot() error { return ErrUnsupported }

// PowerOff needs Linux.
func PowerOff() error { return ErrUnsupported }

// EntropyReady is false where the rescue does not run.
func EntropyReady() bool { return false }
