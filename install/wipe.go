package install

import (
	"fmt"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// NewWipePlan plans wiping targets with mode (bundle.WipeQuick or
// WipeFull), with no bundle: a factory reset wipes the board's state
// partitions this way. The targets are resolved and checked as an
// install's wipe steps are (the board profile's targets, else partitions
// of that name on the board's disks; a target in use is refused), every
// one before the first is wiped, and Execute runs them with the same
// events and progress as an install. cfg.Board is required.
func NewWipePlan(targets []string, mode string, cfg Config) (*Plan, error) {
	if cfg.Board == nil {
		return nil, fmt.Errorf("%w: wiping needs a board profile", ErrTargetMissing)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: nothing to wipe", ErrTargetMissing)
	}
	cfg = cfg.withDefaults()
	p := &Plan{cfg: cfg, board: cfg.Board.String()}
	steps := make([]bundle.Step, len(targets))
	for i, t := range targets {
		steps[i] = bundle.Step{Type: bundle.StepWipe, Target: t, Mode: mode}
	}
	if err := p.resolve(steps); err != nil {
		return nil, err
	}
	return p, nil
}
