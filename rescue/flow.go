package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/network"
	"github.com/lifeboat-updater/lifeboat/partitions"
	"github.com/lifeboat-updater/lifeboat/pid1"
	"github.com/lifeboat-updater/lifeboat/source"
)

// Paths and console words of the install flow.
const (
	// EventsPath is where the install flow appends its JSON-lines events
	// (docs/cli.md, "Events"), one attempt after another. /run is a
	// tmpfs: the file lives until the board reboots.
	EventsPath = "/run/lifeboat/events.jsonl"
	// EventPrefix starts each event line on the console when the kernel
	// command line has lifeboat.events=console: a host watching the
	// serial console (a factory line, the end-to-end tests) reads the
	// install as data without a network connection to the board.
	EventPrefix = "lifeboat-event: "

	// MsgReason starts the first line of every attempt: why the rescue
	// runs.
	MsgReason = "reason: "
	// MsgInstalled starts the summary of a successful install, after
	// which the board reboots.
	MsgInstalled = "installed "
	// MsgFactoryReset starts the summary of a factory reset.
	MsgFactoryReset = "factory reset done: wiped "
	// MsgMarkerSet and MsgFinished say what the flow changed in the
	// bootloader environment before and after an install.
	MsgMarkerSet = "transaction marker set"
	MsgFinished  = "boot counter reset, transaction marker cleared"
	// MsgHold says the flow stops where lifeboat.hold=finish asks.
	MsgHold = "holding before the bootloader environment update (lifeboat.hold=finish)"
)

// Reasons the rescue gives for running, when the kernel command line's
// lifeboat.reason= does not say.
const (
	ReasonBlank     = "blank storage"
	ReasonRequested = "requested"
)

// Installer is the rescue's job: find a signed bundle, verify it, install
// it, and let the board reboot into what it installed. Its Flow method is
// a Flow; the zero Installer is what Main runs.
//
// Each attempt, in order:
//
//  1. load the board profile and the trust store (/etc/lifeboat);
//  2. say why the rescue runs and what it does about it, first on the
//     console and first in the events (a "reason" event): lifeboat.reason=
//     from the kernel command line, else the board's button held at
//     power-on (short: reinstall, long: factory reset), else the
//     bootloader environment (an unfinished install's transaction marker,
//     a boot counter past its limit; see boards.Recovery), else "blank
//     storage" when a storage device of the board holds no partition
//     table, else "requested". A factory reset wipes the board's state
//     partitions (FactoryReset) and ends the attempt there;
//  3. list the sources: the profile's, or lifeboat.url= (source.ParseSpec);
//  4. bring up the network (DHCP, or the kernel's ip=), once per boot,
//     unless every source is local (a file, removable media);
//  5. open the first source that works (source.OpenFirst, with backoff;
//     HTTP resumes over drops) and verify the bundle as it streams in
//     (bundle.NewReader);
//  6. plan against the board; set the transaction marker in the board's
//     bootloader environment before the first write (and again after any
//     step that rewrote the environment's place); run the plan
//     (install.NewPlan, Execute), showing progress on the console and
//     feeding the watchdog on every event, so a stalled install stops
//     feeding it and the board resets into the rescue again;
//  7. print the summary (with the chunks skipped because the device held
//     them already: what a resumed install shows) and sync; then, every
//     step verified, clear the marker, reset the boot counter and record
//     the security version in one environment update.
//
// Flow returns nil only after all of that succeeded, so the board reboots
// only into a completely written system; any failure returns a *FlowError
// and the platform tries again later (see Run). The kernel parameter
// lifeboat.hold=finish stops the flow before step 7's environment update
// (the marker stays set), for testing what a power cut there does.
type Installer struct {
	// BoardProfile is read when the Env carries no profile; empty means
	// BoardProfilePath.
	BoardProfile string
	// KeysDir is the trust store; empty means KeysDir.
	KeysDir string
	// EventsPath receives the events; empty means EventsPath, "-" none.
	EventsPath string
	// Console receives the event lines with lifeboat.events=console; nil
	// means /dev/console (else standard output).
	Console io.Writer
	// Resolver finds the board's storage devices.
	Resolver boards.Resolver
	// StorageWait bounds the first attempt's wait for the board's storage
	// to appear (drivers probe in the background); 0 means 10 s.
	StorageWait time.Duration
	// Network brings the network up; nil means network.Configure.
	Network func(ctx context.Context, cfg network.Config) (*network.Result, error)
	// Clock is what HTTPS checks certificates against; nil means
	// source.SystemClock, so a board without a real-time clock gets a
	// plausible date (source.BuildTime, then the server's) system-wide.
	Clock source.Clock
	// Media configures the "usb" source.
	Media source.Media
	// Rounds is how often OpenFirst goes through the sources in one
	// attempt; the zero value means 4 rounds from 1 s apart up to 8 s.
	// After that the attempt fails and Run's backoff takes over.
	Rounds source.Backoff
	// Install adjusts the install configuration (tests: targets, a
	// security version file).
	Install func(*install.Config)
	// Sync flushes file systems after an install; nil means sync(2).
	Sync func()
	// Button reads the board's recovery button; nil means the board's
	// input device or GPIO line (OpenButton).
	Button func(ctx context.Context, b *boards.Button, logf func(string, ...any)) (Hold, error)
	// StateDir holds the rescue's files for one boot; empty means
	// /run/lifeboat.
	StateDir string

	mu       sync.Mutex
	attempt  int
	decision *Decision
	netUp    bool
	client   *source.Client
}

// InstallFlow returns the flow Main runs: a new Installer's Flow.
func InstallFlow() pid1.Flow { return (&Installer{}).Flow }

// FlowError is why an attempt failed: its stage, and the lifeboat command's
// exit code for it (docs/cli.md, "Exit codes"), so the console says the
// same class of failure as the command line tool would.
type FlowError struct {
	Stage string // board, trust store, network, source, bundle, plan, install
	Code  int
	Err   error
}

func (e *FlowError) Error() string {
	return fmt.Sprintf("%s failed, exit %d (%s): %s", e.Stage, e.Code, exitcode.Class(e.Code), bundle.OneLine(e.Err.Error()))
}

func (e *FlowError) Unwrap() error { return e.Err }

func flowFail(stage string, code int, err error) error {
	return &FlowError{Stage: stage, Code: code, Err: err}
}

// Flow is one attempt; see Installer.
func (in *Installer) Flow(ctx context.Context, env *pid1.Env) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.attempt++
	env.Alive()
	logf := func(format string, args ...any) {
		env.Alive() // every line a source or the network logs is progress
		env.Log.Printf(format, args...)
	}

	w, closeEvents := in.eventWriters(env)
	defer closeEvents()
	board, err := in.loadBoard(env)
	if err != nil {
		in.sayReason(ctx, env, nil, nil, w)
		return flowFail("board", exitcode.Usage, err)
	}
	rec, err := newRecoveryEnv(board, in.Resolver)
	if err != nil {
		env.Log.Printf("recovery: %v", err)
	}
	d := in.sayReason(ctx, env, board, rec, w)
	if d.Action == ActionFactoryReset {
		return in.factoryReset(ctx, env, board, w)
	}
	trust, err := bundle.LoadTrustStore(pathOr(in.KeysDir, KeysDir))
	if err != nil {
		return flowFail("trust store", exitcode.Untrusted, err)
	}

	spec, from := strings.Join(board.Sources, ","), "board profile"
	if u := env.Params["url"]; u != "" {
		spec, from = u, "lifeboat.url"
	}
	if in.client == nil {
		clock := in.Clock
		if clock == nil {
			clock = source.SystemClock{}
		}
		c, err := source.NewClient(source.ClientConfig{Clock: clock, Logf: logf})
		if err != nil {
			return flowFail("source", exitcode.Internal, err)
		}
		in.client = c
	}
	srcs, err := source.ParseSpec(spec, source.Options{Client: in.client, Media: in.Media, Logf: logf})
	if err != nil {
		return flowFail("source", exitcode.Usage, fmt.Errorf("sources from %s: %w", from, err))
	}
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = s.String()
	}
	env.Log.Printf("sources (%s): %s", from, strings.Join(names, ", "))

	if srcs, err = in.bringUpNetwork(ctx, env, srcs, logf); err != nil {
		return flowFail("network", exitcode.Internal, err)
	}

	rounds := in.Rounds
	if rounds == (source.Backoff{}) {
		rounds = source.Backoff{Initial: time.Second, Max: 8 * time.Second, Attempts: 4}
	}
	st, _, err := source.OpenFirst(ctx, srcs, rounds, logf)
	if err != nil {
		return flowFail("source", exitcode.Internal, err)
	}
	defer st.Close()
	return in.install(ctx, env, board, trust, st, rec, w)
}

// loadBoard parses the profile Run read, else reads it from BoardProfile.
func (in *Installer) loadBoard(env *pid1.Env) (*boards.Profile, error) {
	b := env.BoardProfile
	path := pathOr(in.BoardProfile, pid1.BoardProfilePath)
	if len(b) == 0 {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("board profile: %w", err)
		}
	}
	p, err := boards.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("board profile %s: %w", path, err)
	}
	return p, nil
}

// sayReason prints why the rescue runs and what it does, first thing in
// every attempt, and sends it as the attempt's first event. The decision
// is made once, on the first attempt: a later attempt after a partial
// install would otherwise no longer see blank storage, and a button is
// held at power-on only.
func (in *Installer) sayReason(ctx context.Context, env *pid1.Env, board *boards.Profile, rec *recoveryEnv, w *eventWriters) Decision {
	if in.decision == nil {
		d := in.decide(ctx, env, board, rec)
		in.decision = &d
	}
	d := *in.decision
	if in.attempt == 1 {
		env.Log.Printf("%s%s", MsgReason, d)
	} else {
		env.Log.Printf("%s%s (attempt %d)", MsgReason, d, in.attempt)
	}
	w.emit("reason", map[string]any{"reason": d.Reason, "source": d.Source, "action": d.Action, "attempt": in.attempt})
	return d
}

// isBlank reports whether the disk at path holds no partition table.
func isBlank(path string) (bool, error) {
	_, err := partitions.ReadDevice(path)
	switch {
	case errors.Is(err, partitions.ErrNoTable):
		return true, nil
	case errors.Is(err, partitions.ErrBadTable):
		return false, nil // a damaged table is not blank storage
	}
	return false, err
}

func pathOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
