package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// ErrNoState reports a factory reset on a board whose profile names no
// state partitions (recovery.state), or one that is not on the board.
var ErrNoState = errors.New("rescue: no state partition to reset")

// Wiped is one state partition a factory reset wiped.
type Wiped struct {
	Name   string
	Path   string
	Offset int64
	Size   int64
}

func (w Wiped) String() string {
	return fmt.Sprintf("%s (%s at %d, %s)", w.Name, w.Path, w.Offset, mbytes(w.Size))
}

// FactoryReset wipes the board's state partitions (recovery.state): each
// is discarded where the storage can, then its first and last MiB are
// zeroed (handlers.Wipe, quick), so that no file system is found there
// and the production system makes a new, empty one, as on its first
// boot. Nothing else is written: the operating system, the bootloader and
// its environment stay as they are.
//
// Every name is resolved before the first one is wiped, so that a
// profile naming a partition the disk does not have changes nothing.
func FactoryReset(ctx context.Context, board *boards.Profile, r boards.Resolver) ([]Wiped, error) {
	if board == nil || board.Recovery == nil || len(board.Recovery.State) == 0 {
		return nil, fmt.Errorf("%w: the board profile names none (recovery.state)", ErrNoState)
	}
	var places []Wiped
	for _, name := range board.Recovery.State {
		w, err := resolveState(board, r, name)
		if err != nil {
			return nil, err
		}
		places = append(places, w)
	}
	var done []Wiped
	for _, w := range places {
		if err := wipe(ctx, w); err != nil {
			return done, err
		}
		done = append(done, w)
	}
	return done, nil
}

func wipe(ctx context.Context, w Wiped) error {
	dev, err := handlers.Open(w.Path, handlers.Options{Write: true})
	if err != nil {
		return fmt.Errorf("state %s: %w", w.Name, err)
	}
	defer dev.Close()
	if user, err := handlers.InUse(w.Path, w.Offset, w.Size); err == nil && user != "" {
		return fmt.Errorf("state %s: %w: in use (%s)", w.Name, install.ErrTargetIO, user)
	}
	win, err := handlers.NewWindow(dev, w.Offset, w.Size)
	if err != nil {
		return fmt.Errorf("state %s: %w", w.Name, err)
	}
	if err := handlers.Wipe(ctx, win, bundle.WipeQuick, nil); err != nil {
		return fmt.Errorf("state %s: %w", w.Name, err)
	}
	return nil
}

// resolveState finds a state partition: a target of the profile, else a
// partition of that name on one of its storage devices.
func resolveState(board *boards.Profile, r boards.Resolver, name string) (Wiped, error) {
	if _, ok := board.Targets[name]; ok {
		pl, err := r.Resolve(board, name)
		if err != nil {
			return Wiped{}, fmt.Errorf("state %s: %w", name, err)
		}
		if pl.Flash != nil {
			return Wiped{}, fmt.Errorf("%w: state %s is raw flash (%s); only block storage is reset", ErrNoState, name, pl)
		}
		w := Wiped{Name: name, Path: pl.Path, Offset: pl.Offset, Size: pl.Size}
		if pl.Partition != "" {
			p, err := findPart(pl.Path, pl.Partition)
			if err != nil {
				return Wiped{}, fmt.Errorf("state %s: %w", name, err)
			}
			w.Offset, w.Size = p.Start, p.Size
		}
		if w.Size == 0 {
			size, err := deviceSize(w.Path)
			if err != nil {
				return Wiped{}, fmt.Errorf("state %s: %w", name, err)
			}
			w.Size = size - w.Offset
		}
		return w, nil
	}
	var errs []error
	for _, n := range slices.Sorted(mapKeys(board.Storage)) {
		dev, err := r.Device(board, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := findPart(dev, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return Wiped{Name: name, Path: dev, Offset: p.Start, Size: p.Size}, nil
	}
	return Wiped{}, fmt.Errorf("%w: %q: %w", ErrNoState, name, errors.Join(errs...))
}

func findPart(dev, name string) (partitions.Partition, error) {
	f, err := os.Open(dev)
	if err != nil {
		return partitions.Partition{}, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return partitions.Partition{}, err
	}
	l, err := partitions.Read(f, size, 512)
	if err != nil {
		return partitions.Partition{}, fmt.Errorf("%s: %w", dev, err)
	}
	p, ok := l.Find(name)
	if !ok {
		return partitions.Partition{}, fmt.Errorf("no partition %q on %s", name, dev)
	}
	return p, nil
}

func deviceSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}
