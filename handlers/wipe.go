package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// wipeEdge is how much a quick wipe zeroes at each end of the target:
// enough for every partition table, filesystem superblock and LUKS or
// RAID header that tools look for at the start or the end of a device.
const wipeEdge = 1 << 20

// wipePiece is how much a full wipe zeroes per call, so that progress can
// be reported and a cancellation noticed.
const wipePiece = 64 << 20

// Wipe erases t. Mode bundle.WipeQuick (or "") discards the whole target,
// where the storage can, and then zeroes its first and last MiB, so that
// nothing on it is recognised any more; it takes seconds whatever the
// size. Mode bundle.WipeFull makes every byte read as zero. progress, if
// not nil, is called with the bytes done so far.
func Wipe(ctx context.Context, t Target, mode string, progress func(done int64)) error {
	size := t.Size()
	report := func(n int64) {
		if progress != nil {
			progress(n)
		}
	}
	switch mode {
	case "", bundle.WipeQuick:
		if err := t.Discard(0, size); err != nil && !errors.Is(err, ErrNotSupported) {
			return fmt.Errorf("wiping %v: %w", t, err)
		}
		head := min(size, wipeEdge)
		if err := t.ZeroRange(0, head); err != nil {
			return fmt.Errorf("wiping %v: %w", t, err)
		}
		if tail := max(head, size-wipeEdge); tail < size {
			if err := t.ZeroRange(tail, size-tail); err != nil {
				return fmt.Errorf("wiping %v: %w", t, err)
			}
		}
	case bundle.WipeFull:
		for off := int64(0); off < size; off += wipePiece {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(wipePiece, size-off)
			if err := t.ZeroRange(off, n); err != nil {
				return fmt.Errorf("wiping %v: %w", t, err)
			}
			report(off + n)
		}
	default:
		return fmt.Errorf("handlers: wipe mode %q, want %q or %q", mode, bundle.WipeQuick, bundle.WipeFull)
	}
	if err := t.Sync(); err != nil {
		return fmt.Errorf("wiping %v: %w", t, err)
	}
	report(size)
	return nil
}
