package rescue

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/lifeboat-updater/lifeboat/boardenv"
	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/partitions"
	"github.com/lifeboat-updater/lifeboat/pid1"
)

// Reasons the bootloader environment gives.
const (
	ReasonUnfinished = "unfinished install"
	ReasonBootCount  = "boot counter exceeded"
)

// EnvReason says why the bootloader environment sends the board to the
// rescue: an unfinished install (the transaction marker is set) or a boot
// counter past its limit. ok is false when it says nothing.
func EnvReason(r boards.Recovery, vars map[string]string) (why string, ok bool) {
	if r.Marker != "" {
		if v, set := vars[r.Marker]; set && v == r.MarkerValue {
			return fmt.Sprintf("%s (%s=%s)", ReasonUnfinished, r.Marker, v), true
		}
	}
	if r.Counter == "" {
		return "", false
	}
	v, set := vars[r.Counter]
	if !set {
		return "", false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return "", false
	}
	if r.CountDown {
		if n <= 0 {
			return fmt.Sprintf("%s (%s=%d: no boots left)", ReasonBootCount, r.Counter, n), true
		}
		return "", false
	}
	from := "limit"
	if _, err := strconv.Atoi(vars[r.LimitVar]); r.LimitVar != "" && err == nil {
		from = r.LimitVar
	}
	if l := limit(r, vars); n > l {
		return fmt.Sprintf("%s (%s=%d > %s=%d)", ReasonBootCount, r.Counter, n, from, l), true
	}
	return "", false
}

// BeginChanges are the variables set before the first write to what the
// bootloader boots: the marker and, with ExceedOnBegin, the counter past
// its limit (read from vars when the environment holds it).
func BeginChanges(r boards.Recovery, vars map[string]string) map[string]string {
	if r.Marker == "" {
		return nil
	}
	set := map[string]string{r.Marker: r.MarkerValue}
	if r.ExceedOnBegin && r.Counter != "" {
		if r.CountDown {
			set[r.Counter] = "0"
		} else {
			set[r.Counter] = strconv.Itoa(limit(r, vars) + 1)
		}
	}
	return set
}

// limit is the counter's limit: the environment's LimitVar, else Limit.
func limit(r boards.Recovery, vars map[string]string) int {
	if r.LimitVar != "" {
		if l, err := strconv.Atoi(vars[r.LimitVar]); err == nil {
			return l
		}
	}
	return r.Limit
}

// FinishChanges are the variables changed once every step verified: the
// marker cleared, the counter reset, the preset's own, and the device's
// security version when the profile keeps it in the environment (sv < 0:
// not known).
func FinishChanges(r boards.Recovery, sv int64) (set map[string]string, unset []string) {
	set = map[string]string{}
	if r.Marker != "" {
		if r.MarkerClear == "" {
			unset = append(unset, r.Marker)
		} else {
			set[r.Marker] = r.MarkerClear
		}
	}
	if r.Counter != "" {
		set[r.Counter] = r.CounterReset
	}
	for k, v := range r.OnSuccess {
		if v == "" {
			unset = append(unset, k)
		} else {
			set[k] = v
		}
	}
	if r.SecurityVersion != "" && sv >= 0 {
		set[r.SecurityVersion] = strconv.FormatInt(sv, 10)
	}
	return set, unset
}

// recoveryEnv is the board's bootloader environment, as the rescue's
// contract with the bootloader uses it.
type recoveryEnv struct {
	rec   boards.Recovery
	name  string
	open  func() (bootenv.Store, error)
	board *boards.Profile
}

// newRecoveryEnv returns the board's recovery contract, or nil if its
// profile has none.
func newRecoveryEnv(board *boards.Profile, r boards.Resolver) (*recoveryEnv, error) {
	if board == nil || board.Recovery == nil {
		return nil, nil
	}
	rec, err := board.Recovery.Resolved()
	if err != nil {
		return nil, err
	}
	re := &recoveryEnv{rec: rec, board: board}
	if rec.Marker == "" && rec.Counter == "" && rec.SecurityVersion == "" {
		return re, nil
	}
	if re.name, err = board.RecoveryEnv(); err != nil {
		return nil, err
	}
	re.open = func() (bootenv.Store, error) { return boardenv.Open(board, r, boardenv.Target{Name: re.name}) }
	return re, nil
}

// hasEnv reports whether the contract uses the bootloader environment.
func (re *recoveryEnv) hasEnv() bool { return re != nil && re.open != nil }

// vars reads the environment's variables.
func (re *recoveryEnv) vars() (map[string]string, error) {
	s, err := re.open()
	if err != nil {
		return nil, fmt.Errorf("bootenv %s: %w", re.name, err)
	}
	defer s.Close()
	env, err := s.Load()
	if err != nil {
		return nil, fmt.Errorf("bootenv %s: %w", re.name, err)
	}
	return env.Vars(), nil
}

// apply changes the environment in one durable update.
func (re *recoveryEnv) apply(set map[string]string, unset []string) error {
	s, err := re.open()
	if err != nil {
		return fmt.Errorf("bootenv %s: %w", re.name, err)
	}
	defer s.Close()
	if err := s.Apply(set, unset); err != nil {
		return fmt.Errorf("bootenv %s: %w", re.name, err)
	}
	return nil
}

// ensureMarker sets the marker if it is not set: a bundle step that
// rewrote the environment's place (the whole grubenv partition) took it
// away. It reports whether it had to.
func (re *recoveryEnv) ensureMarker() (bool, error) {
	if !re.hasEnv() || re.rec.Marker == "" {
		return false, nil
	}
	vars, err := re.vars()
	if err != nil {
		return false, err
	}
	if vars[re.rec.Marker] == re.rec.MarkerValue {
		return false, nil
	}
	return true, re.apply(BeginChanges(re.rec, vars), nil)
}

// unreadable reports errors that mean the environment is not there yet
// (blank storage, a partition not written yet) rather than broken.
func unreadable(err error) bool {
	return errors.Is(err, bootenv.ErrCorrupt) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, bootenv.ErrBadCRC) ||
		errors.Is(err, install.ErrTargetMissing) || errors.Is(err, boards.ErrNoDevice) ||
		errors.Is(err, partitions.ErrNoTable) || errors.Is(err, partitions.ErrBadTable)
}

// describe lists changes for the console: "a=1, b unset".
func describe(set map[string]string, unset []string) string {
	var s string
	for _, k := range sortedKeys(set) {
		if s != "" {
			s += ", "
		}
		s += k + "=" + set[k]
	}
	for _, k := range unset {
		if s != "" {
			s += ", "
		}
		s += k + " unset"
	}
	return s
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// begin sets the transaction marker before the first write. An
// environment that is not there yet (blank storage, a partition not
// written) cannot hold it, and then nothing boots from that storage
// either: the install goes on, and the marker is set as soon as a step
// has written the environment (see ensureMarker).
func (in *Installer) begin(env *pid1.Env, rec *recoveryEnv, w *eventWriters) error {
	if !rec.hasEnv() || rec.rec.Marker == "" {
		return nil
	}
	vars, err := rec.vars()
	if err != nil && unreadable(err) {
		env.Log.Printf("bootenv %s: transaction marker not set yet (%v); it is set once a step wrote the environment", rec.name, err)
		return nil
	}
	if err != nil {
		return err
	}
	set := BeginChanges(rec.rec, vars)
	if err := rec.apply(set, nil); err != nil {
		return err
	}
	env.Log.Printf("bootenv %s: %s (%s)", rec.name, MsgMarkerSet, describe(set, nil))
	w.emit("bootenv", map[string]any{"bootenv": rec.name, "why": "begin", "set": set})
	return nil
}

// finish makes the one environment update after a verified install:
// marker cleared, counter reset, the preset's variables, the security
// version (sv < 0: not kept there).
func (in *Installer) finish(env *pid1.Env, rec *recoveryEnv, sv int64, w *eventWriters) error {
	if !rec.hasEnv() {
		return nil
	}
	set, unset := FinishChanges(rec.rec, sv)
	if err := rec.apply(set, unset); err != nil {
		if unreadable(err) {
			// Neither the storage nor the bundle holds an environment:
			// there is no marker to clear and no counter to reset.
			env.Log.Printf("bootenv %s: nothing to reset: %v", rec.name, err)
			return nil
		}
		return err
	}
	env.Log.Printf("bootenv %s: %s (%s)", rec.name, MsgFinished, describe(set, unset))
	w.emit("bootenv", map[string]any{"bootenv": rec.name, "why": "finish", "set": set, "unset": unset})
	return nil
}

// hold stops the flow for good (lifeboat.hold=finish), still feeding the
// watchdog: what happens next is the test's power cut.
func (in *Installer) hold(ctx context.Context, env *pid1.Env) {
	env.Log.Printf("%s", MsgHold)
	for ctx.Err() == nil {
		env.Alive()
		select {
		case <-ctx.Done():
		case <-time.After(env.AliveEvery()):
		}
	}
}

// seedSecurityVersion gives the install engine the device's security
// version kept in the bootloader environment: the higher of it and the
// profile's file, written to a file of this boot that the engine reads
// and updates. An environment that cannot be read counts as 0 only when
// it is not there at all (blank storage).
func (in *Installer) seedSecurityVersion(env *pid1.Env, board *boards.Profile, rec *recoveryEnv) (string, error) {
	var sv uint64
	if board.SecurityVersionFile != "" {
		v, err := install.ReadSecurityVersion(board.SecurityVersionFile)
		if err != nil {
			return "", err
		}
		sv = v
	}
	vars, err := rec.vars()
	switch {
	case err != nil && !unreadable(err):
		return "", fmt.Errorf("%w: %w", install.ErrRollback, err)
	case err == nil:
		if s, ok := vars[rec.rec.SecurityVersion]; ok {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return "", fmt.Errorf("%w: bootenv %s: %s=%q is not a number", install.ErrRollback, rec.name, rec.rec.SecurityVersion, s)
			}
			sv = max(sv, v)
		}
	}
	path := filepath.Join(pathOr(in.StateDir, "/run/lifeboat"), "security-version")
	if err := install.WriteSecurityVersion(path, sv); err != nil {
		return "", err
	}
	return path, nil
}
