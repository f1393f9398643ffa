package rescue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/pid1"
)

// ErrNoState reports a factory reset on a board whose profile names no
// state partitions (recovery.state).
var ErrNoState = errors.New("rescue: no state partition to reset")

// FactoryReset wipes the board's state partitions (recovery.state)
// through the install engine (install.NewWipePlan): each is discarded
// where the storage can, then its first and last MiB are zeroed, so that
// no file system is found there and the production system makes a new,
// empty one, as on its first boot. Nothing else is written: the operating
// system, the bootloader and its environment stay as they are.
//
// Every name is resolved, and checked not to be in use, before the first
// one is wiped, so that a profile naming a partition the disk does not
// have changes nothing. cfg gives the resolver and the observer; its
// Board is board.
func FactoryReset(ctx context.Context, board *boards.Profile, cfg install.Config) (*install.Plan, *install.Result, error) {
	if board == nil || board.Recovery == nil || len(board.Recovery.State) == 0 {
		return nil, nil, fmt.Errorf("%w: the board profile names none (recovery.state)", ErrNoState)
	}
	cfg.Board = board
	p, err := install.NewWipePlan(board.Recovery.State, bundle.WipeQuick, cfg)
	if err != nil {
		return nil, nil, err
	}
	res, err := p.Execute(ctx)
	return p, res, err
}

// factoryReset wipes the state partitions, showing and sending the
// engine's events as an install does; nil lets the board reboot.
func (in *Installer) factoryReset(ctx context.Context, env *pid1.Env, board *boards.Profile, w *eventWriters) (err error) {
	env.AliveFor(2 * time.Minute) // a discard of a large partition can take a while
	observe, report := in.engineEvents(env, w)
	defer func() { report(err) }()
	cfg := install.Config{Resolver: in.Resolver, Observer: observe}
	if in.Install != nil {
		in.Install(&cfg)
	}
	start := time.Now()
	plan, _, err := FactoryReset(ctx, board, cfg)
	env.Alive()
	if err != nil {
		code := install.ExitCode(err)
		if errors.Is(err, ErrNoState) {
			code = exitcode.NoTarget
		}
		return flowFail("factory reset", code, err)
	}
	var names []string
	for _, s := range plan.Info().Steps {
		names = append(names, s.Target)
		where := s.Path
		if s.Partition != "" {
			where += " partition " + s.Partition
		}
		env.Log.Printf("factory reset: wiped %s (%s at %d, %s)", s.Target, where, s.Offset, install.Bytes(s.Size))
	}
	sync := in.Sync
	if sync == nil {
		sync = syncFS
	}
	sync()
	env.Log.Printf("%s%d state partition(s) in %.1fs (%s); the system partitions are untouched", MsgFactoryReset, len(names), time.Since(start).Seconds(), strings.Join(names, ", "))
	w.emit("factory-reset", map[string]any{"wiped": names, "duration_seconds": time.Since(start).Seconds()})
	return nil
}
