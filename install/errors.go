package install

import (
	"errors"
	"fmt"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// Errors returned by this package, besides the bundle package's, which
// pass through wrapped. Compare with errors.Is.
var (
	// ErrIncompatible means the bundle's compatible list does not name
	// this board (and revision).
	ErrIncompatible = errors.New("install: bundle is not for this board")

	// ErrRollback means the bundle's security version is lower than the
	// device's: installing it would bring back fixed vulnerabilities.
	ErrRollback = errors.New("install: security version rollback refused")

	// ErrTargetMissing means a step's target cannot be found: no such
	// name, device or partition.
	ErrTargetMissing = errors.New("install: target not found")

	// ErrTargetTooSmall means an image, or a partition table, does not fit
	// its target.
	ErrTargetTooSmall = errors.New("install: target too small")

	// ErrTargetIO means a target cannot be written, or reading or writing
	// it failed.
	ErrTargetIO = errors.New("install: target not writable or I/O error")

	// ErrReadBack means the bytes read back after writing differ from the
	// bundle: the storage does not keep what it is given.
	ErrReadBack = errors.New("install: read-back differs from what was written")

	// ErrDiffers means Verify found chunks on the device that differ from
	// the bundle.
	ErrDiffers = errors.New("install: device differs from the bundle")

	// ErrNotStreamable means the bundle's steps use images out of payload
	// order, which a stream cannot do; install it from a file.
	ErrNotStreamable = errors.New("install: steps use images out of payload order; a stream cannot be installed")
)

// StepError is a failed step.
type StepError struct {
	Step   int             // 1-based
	Type   bundle.StepType //
	Target string          // the step's target name
	Err    error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s %s): %v", e.Step, e.Type, e.Target, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// ChunkError is a chunk of an image step that could not be installed.
// Nothing from this chunk on was written.
type ChunkError struct {
	Step   int    // 1-based
	Image  string //
	Chunk  int    // chunk number within the image
	Offset int64  // where the chunk goes, in bytes from the target's start
	Target string // the target, as handlers name it
	Err    error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("step %d: image %q chunk %d (target %s, offset %d): %v", e.Step, e.Image, e.Chunk, e.Target, e.Offset, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }

// ExitCode maps an error from this package, the bundle package or the
// handlers to its exit code (package exitcode). nil maps to exitcode.OK.
func ExitCode(err error) int {
	// What is wrong with the bundle comes first: a chunk that fails its
	// checksum inside a step is a corrupt bundle, not a target error.
	if c := exitcode.Of(err); c != exitcode.Internal {
		return c
	}
	switch {
	case errors.Is(err, ErrNotStreamable), isTableError(err):
		return exitcode.Corrupt
	case errors.Is(err, ErrIncompatible):
		return exitcode.Incompatible
	case errors.Is(err, ErrRollback):
		return exitcode.Rollback
	case errors.Is(err, ErrTargetMissing), errors.Is(err, handlers.ErrNotFound):
		return exitcode.NoTarget
	case errors.Is(err, ErrTargetTooSmall), errors.Is(err, partitions.ErrTooSmall):
		return exitcode.TooSmall
	case errors.Is(err, ErrTargetIO), errors.Is(err, ErrReadBack), errors.Is(err, handlers.ErrReadOnly):
		return exitcode.TargetIO
	case errors.Is(err, ErrDiffers):
		return exitcode.Differs
	}
	return exitcode.Internal
}

// isTableError reports a partition table in a bundle that no disk could
// take: the bundle is wrong, not the device.
func isTableError(err error) bool {
	for _, e := range []error{partitions.ErrInvalid, partitions.ErrOverlap, partitions.ErrAlign,
		partitions.ErrBadType, partitions.ErrTooMany, partitions.ErrTooLarge, partitions.ErrBadGUID, partitions.ErrDuplicateName} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
