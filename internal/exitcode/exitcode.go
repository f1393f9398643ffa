// Package exitcode maps Lifeboat's errors to the process exit codes that
// lifeboat and lifeboat-bundle document (docs/cli.md), so a factory station
// or a script can tell a bad bundle from a bad target without parsing text.
package exitcode

import (
	"errors"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// The exit codes.
const (
	OK           = 0  // success
	Internal     = 1  // anything not listed below
	Usage        = 2  // bad command line
	Untrusted    = 3  // not signed by a trusted key
	BadSignature = 4  // a trusted key's signature does not verify: tampered
	Corrupt      = 5  // malformed bundle or a chunk that does not match its hash
	Truncated    = 6  // the bundle ended early
	Incompatible = 7  // the bundle is for another board
	Rollback     = 8  // the bundle's security version is below the device's
	NoTarget     = 9  // a target does not exist
	TooSmall     = 10 // an image or layout does not fit its target
	TargetIO     = 11 // a target is not writable, or an I/O error on it
	Differs      = 12 // verify found the device differs from the bundle
)

// Errors that packages outside bundle wrap so that Of can classify them.
var (
	ErrIncompatible = errors.New("bundle is not for this board")
	ErrRollback     = errors.New("security version is lower than the device's")
	ErrNoTarget     = errors.New("target not found")
	ErrTooSmall     = errors.New("target too small")
	ErrTargetIO     = errors.New("target I/O error")
	ErrDiffers      = errors.New("device differs from the bundle")
	ErrUsage        = errors.New("usage")
)

var table = []struct {
	err  error
	code int
}{
	{ErrUsage, Usage},
	{bundle.ErrUnknownKey, Untrusted},
	{bundle.ErrSignature, BadSignature},
	{bundle.ErrTruncated, Truncated},
	{bundle.ErrFormat, Corrupt},
	{bundle.ErrChecksum, Corrupt},
	{ErrIncompatible, Incompatible},
	{ErrRollback, Rollback},
	{ErrNoTarget, NoTarget},
	{ErrTooSmall, TooSmall},
	{ErrTargetIO, TargetIO},
	{ErrDiffers, Differs},
}

// Of returns the exit code for err: OK for nil, the first matching class
// in the order above, Internal otherwise.
func Of(err error) int {
	if err == nil {
		return OK
	}
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return Internal
}
