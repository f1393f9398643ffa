package rescue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/pid1"
)

// What the rescue decides to do.
const (
	// ActionReinstall installs a bundle from the sources.
	ActionReinstall = "reinstall"
	// ActionFactoryReset wipes the board's state partitions and leaves
	// its operating system as it is.
	ActionFactoryReset = "factory reset"
)

// Where a Decision came from.
const (
	FromCmdline = "cmdline" // lifeboat.reason=
	FromButton  = "button"  // held at power-on
	FromBootEnv = "bootenv" // transaction marker or boot counter
	FromStorage = "storage" // no partition table
	FromDefault = "default" // nothing said why
)

// ReasonParamFactoryReset is the lifeboat.reason= value that asks for a
// factory reset.
const ReasonParamFactoryReset = "factory-reset"

// Decision is why the rescue runs and what it does about it: the first
// thing it says on the console and in its events.
type Decision struct {
	Reason string // for a person: "boot counter exceeded (boot_count=4 > boot_limit=3)"
	Source string // FromCmdline, FromButton, ...
	Action string // ActionReinstall or ActionFactoryReset
}

func (d Decision) String() string { return d.Reason + "; action: " + d.Action }

// CmdlineDecision reads lifeboat.reason=: "factory-reset" asks for a
// factory reset, anything else is a reason to reinstall, said as given.
func CmdlineDecision(reason string) Decision {
	switch strings.ReplaceAll(strings.ToLower(reason), "_", "-") {
	case ReasonParamFactoryReset, "factoryreset", "reset":
		return Decision{Reason: "factory reset requested (lifeboat.reason=" + reason + ")", Source: FromCmdline, Action: ActionFactoryReset}
	}
	return Decision{Reason: reason, Source: FromCmdline, Action: ActionReinstall}
}

// ButtonDecision maps a hold: short is a reinstall, long a factory reset.
func ButtonDecision(h Hold) Decision {
	d := Decision{Reason: "button " + h.String(), Source: FromButton, Action: ActionReinstall}
	if h.Long {
		d.Action = ActionFactoryReset
	}
	return d
}

// decide finds why the rescue runs, in this order: the kernel command
// line (whoever booted the rescue said why), the button (a person at the
// board), the bootloader environment (unfinished install, then the boot
// counter), blank storage, else "requested". Whatever cannot be read is
// logged and passed over: the rescue still runs.
func (in *Installer) decide(ctx context.Context, env *pid1.Env, board *boards.Profile, rec *recoveryEnv) Decision {
	if r := env.Params["reason"]; r != "" {
		return CmdlineDecision(r)
	}
	if board == nil {
		return Decision{Reason: ReasonRequested, Source: FromDefault, Action: ActionReinstall}
	}
	if rec != nil && rec.rec.Button != nil {
		read := in.Button
		if read == nil {
			read = readButton
		}
		h, err := read(ctx, rec.rec.Button, env.Log.Printf)
		switch {
		case err != nil:
			env.Log.Printf("button: %v", err)
		case h.Held:
			return ButtonDecision(h)
		}
	}
	devs := in.waitStorage(env, board)
	if rec.hasEnv() {
		vars, err := rec.vars()
		if err == nil {
			if why, ok := EnvReason(rec.rec, vars); ok {
				return Decision{Reason: why, Source: FromBootEnv, Action: ActionReinstall}
			}
		} else if !unreadable(err) {
			env.Log.Printf("%v", err)
		}
	}
	for _, n := range slices.Sorted(mapKeys(devs)) {
		dev := devs[n]
		blank, err := isBlank(dev)
		if err != nil {
			env.Log.Printf("storage %s (%s): %v", n, dev, err)
			continue
		}
		if blank {
			return Decision{Reason: fmt.Sprintf("%s (no partition table on %s)", ReasonBlank, dev), Source: FromStorage, Action: ActionReinstall}
		}
	}
	return Decision{Reason: ReasonRequested, Source: FromDefault, Action: ActionReinstall}
}

// waitStorage finds the board's storage devices, waiting up to
// StorageWait for drivers that probe in the background.
func (in *Installer) waitStorage(env *pid1.Env, board *boards.Profile) map[string]string {
	wait := in.StorageWait
	if wait <= 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	out := map[string]string{}
	for _, n := range slices.Sorted(mapKeys(board.Storage)) {
		dev, err := in.Resolver.Device(board, n)
		for err != nil && errors.Is(err, boards.ErrNoDevice) && time.Now().Before(deadline) {
			env.Alive()
			time.Sleep(100 * time.Millisecond)
			dev, err = in.Resolver.Device(board, n)
		}
		if err != nil {
			env.Log.Printf("storage %s: %v", n, err)
			continue
		}
		out[n] = dev
	}
	return out
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
