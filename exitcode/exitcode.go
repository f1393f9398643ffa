// Package exitcode holds the exit codes of Lifeboat's commands (lifeboat
// and lifeboat-bundle), one per class of failure, so that a script or a
// factory line can react without parsing messages; the rescue's console
// names the same classes. docs/cli.md, "Exit codes", lists them.
//
// It is the one place both tools share: the host tool links it without
// linking any device code.
package exitcode

import (
	"errors"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// The exit codes.
const (
	OK           = 0
	Internal     = 1  // a bug, or an error of no other kind (bundle source I/O)
	Usage        = 2  // bad command line, unreadable board profile
	Untrusted    = 3  // no signature by a trusted key; no trust store
	BadSignature = 4  // a trusted key's signature does not verify: tampered manifest
	Corrupt      = 5  // malformed bundle, chunk checksum mismatch, invalid table
	Truncated    = 6  // the bundle ends early
	Incompatible = 7  // not for this board
	Rollback     = 8  // lower security version than the device's
	NoTarget     = 9  // a target does not exist
	TooSmall     = 10 // an image or table does not fit
	TargetIO     = 11 // a target is read-only, or I/O on it failed
	Differs      = 12 // verify found differences
)

var classes = [...]string{
	OK:           "success",
	Internal:     "error",
	Usage:        "configuration",
	Untrusted:    "untrusted",
	BadSignature: "bad signature",
	Corrupt:      "corrupt bundle",
	Truncated:    "truncated bundle",
	Incompatible: "incompatible",
	Rollback:     "rollback refused",
	NoTarget:     "target missing",
	TooSmall:     "target too small",
	TargetIO:     "target I/O",
	Differs:      "differs",
}

// Class names an exit code in a few words, as the rescue's console and
// the commands' error lines say it: "exit 4 (bad signature)".
func Class(code int) string {
	if code < 0 || code >= len(classes) {
		return "unknown"
	}
	return classes[code]
}

// Of maps an error of the bundle package to its exit code: what is wrong
// with a bundle, whatever is installing it. Errors of no such class map
// to Internal, nil to OK. The install engine maps its own errors on top
// of this (install.ExitCode).
func Of(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, bundle.ErrUnknownKey):
		return Untrusted
	case errors.Is(err, bundle.ErrSignature):
		return BadSignature
	case errors.Is(err, bundle.ErrTruncated):
		return Truncated
	case errors.Is(err, bundle.ErrFormat), errors.Is(err, bundle.ErrChecksum), errors.Is(err, bundle.ErrOrder):
		return Corrupt
	}
	return Internal
}
