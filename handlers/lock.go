package handlers

import (
	"errors"
	"fmt"
	"os"
	"slices"
)

// Locks are advisory locks on the devices and files an install uses,
// held from its plan to its end (flock(2) on the device node or file).
// Every Lifeboat process takes them, so two installs to the same device,
// or an install and a verify of it, never run at once: the second is
// refused at once with ErrBusy, before it reads or writes anything.
//
// They are not O_EXCL claims: the rescue mounts a FAT partition of the
// very disk it installs to, for a uboot.env in it, which a claim on the
// whole disk would forbid; mounted filesystems and swap on a target are
// refused separately (InUse).
type Locks struct {
	files []*os.File
}

// LockAll locks paths (duplicates and "" are passed over) exclusively,
// for writing, or shared, for reading. On failure nothing stays locked.
func LockAll(paths []string, exclusive bool) (*Locks, error) {
	l := &Locks{}
	seen := map[string]bool{}
	sorted := slices.Clone(paths)
	slices.Sort(sorted)
	for _, p := range sorted {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // a file an install creates; nothing else holds it
		}
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		if err := lockFile(f, exclusive); err != nil {
			f.Close()
			l.Close()
			if errors.Is(err, errWouldBlock) {
				return nil, fmt.Errorf("%w: %s", ErrBusy, p)
			}
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

// Close releases the locks. It may be called more than once.
func (l *Locks) Close() error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, f := range l.files {
		errs = append(errs, f.Close()) // closing the last descriptor unlocks
	}
	l.files = nil
	return errors.Join(errs...)
}
