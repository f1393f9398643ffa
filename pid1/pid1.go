// Package pid1 is the platform Lifeboat's rescue runs on as PID 1: what
// any PID 1 must do, and nothing about installing.
//
// Run brings the system up (early mounts, console and kernel log, kernel
// modules, hardware watchdog, orphan reaping), then runs a Flow forever:
// a flow that fails is logged and retried with backoff, a flow that returns
// nil has finished its job and the board reboots. Run never returns,
// never panics and never exits: when PID 1 exits, the kernel panics.
//
// What can run on a host is plain Go behind small seams and tested there:
// kernel command line parsing, the boot steps as data (System), the
// watchdog logic (WatchdogDevice), the retry loop and backoff. The rest is
// tested by booting an image in QEMU (vm_test.go).
package pid1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Files and devices PID 1 reads.
const (
	CmdlinePath      = "/proc/cmdline"
	BoardProfilePath = "/etc/lifeboat/board.json"
	WatchdogPath     = "/dev/watchdog"
	ModulesDir       = "/lib/modules"
	SysBlock         = "/sys/class/block"
	UptimePath       = "/proc/uptime"
)

// ReadyMarker is what DefaultFlow prints, after the "lifeboat: " prefix and
// before the time since the kernel started, once the platform is up. Tests
// wait for it.
const ReadyMarker = "rescue ready"

var (
	// ErrFlowPanic reports a flow that panicked; the panic was recovered
	// and the flow is retried like any failed flow.
	ErrFlowPanic = errors.New("pid1: flow panicked")
	// ErrUnsupported reports a call that needs Linux.
	ErrUnsupported = errors.New("pid1: needs Linux")
)

// Flow is the rescue's job: find a bundle, install it, report. It gets a
// context that is never cancelled while the board runs, and the Env. It
// calls env.Alive as it makes progress (see Watchdog). Returning nil means
// the job is done and the board reboots; returning an error means try
// again later.
type Flow func(ctx context.Context, env *Env) error

// Env is what a Flow gets from the platform.
type Env struct {
	// Log writes to the console and the kernel log.
	Log Logger
	// Cmdline is the kernel command line.
	Cmdline []Param
	// Params are its lifeboat.* parameters (see Params).
	Params map[string]string
	// BoardProfile is the board profile file's content; nil if the image
	// has none.
	BoardProfile []byte
	// Modules are the kernel modules loaded at boot, by name.
	Modules []string
	// Watchdog is the hardware watchdog; nil if the board has none (its
	// methods still work).
	Watchdog *Watchdog
	// EntropyReady tells whether the kernel's random number generator was
	// seeded when the flow started. Until it is, crypto/rand blocks (for
	// minutes on a board without a hardware RNG): a flow should not need
	// it before it is useful.
	EntropyReady bool

	// Seams to the kernel, so the loop can be tested.
	reboot, powerOff func() error
	execMu           *sync.RWMutex // see Exec
}

// Alive tells the watchdog the flow makes progress.
func (e *Env) Alive() { e.Watchdog.Alive() }

// AliveFor tells the watchdog the flow will be busy, without calling Alive,
// for up to d.
func (e *Env) AliveFor(d time.Duration) { e.Watchdog.AliveFor(d) }

// Reboot syncs file systems and restarts the board. It returns only on
// failure.
func (e *Env) Reboot() error { return e.reboot() }

// PowerOff syncs file systems and powers the board off. It returns only on
// failure.
func (e *Env) PowerOff() error { return e.powerOff() }

// Exec runs cmd to completion. Processes the rescue starts must run through
// Exec: PID 1 reaps every orphan, and Exec keeps the reaper from taking
// cmd's exit status before cmd.Wait does.
func (e *Env) Exec(cmd *exec.Cmd) error {
	if e.execMu != nil {
		e.execMu.RLock()
		defer e.execMu.RUnlock()
	}
	return cmd.Run()
}

// Config changes what Run does. The rescue runs it with its install
// flow (rescue.Main).
type Config struct {
	// Flow is run forever; nil means DefaultFlow.
	Flow Flow
	// BoardProfile is the profile's path; empty means BoardProfilePath.
	BoardProfile string
	// WatchdogTimeout and WatchdogGrace set the watchdog (see Watchdog);
	// zero means the kernel command line's lifeboat.watchdog and
	// lifeboat.watchdog_grace, else the board profile's
	// watchdog.timeout_seconds, else the defaults. lifeboat.watchdog=off
	// leaves the watchdog alone. The device is the profile's
	// watchdog.device, else WatchdogPath.
	WatchdogTimeout, WatchdogGrace time.Duration
}

// DefaultFlow is the flow of a Config without one:
// it says the rescue is ready, shows what it found, and waits, alive.
func DefaultFlow(ctx context.Context, env *Env) error {
	env.Log.Printf("%s%s", ReadyMarker, uptime(UptimePath))
	env.Log.Printf("params: %s", formatParams(env.Params))
	if devs, err := BlockDevices(SysBlock); err == nil {
		env.Log.Printf("block devices: %s", joinOrNone(devs))
	}
	if env.Watchdog != nil {
		env.Log.Printf("watchdog: timeout %v, grace %v", env.Watchdog.Timeout(), env.Watchdog.Grace())
	}
	for {
		env.Alive()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(env.AliveEvery()):
		}
	}
}

// AliveEvery is how often a waiting loop calls Alive: well within the
// watchdog's grace period.
func (e *Env) AliveEvery() time.Duration {
	d := 10 * time.Second
	if g := e.Watchdog.Grace(); g > 0 && g/4 < d {
		d = g / 4
	}
	return d
}

// uptime formats the time since the kernel started, from /proc/uptime, as
// " (3.02s after power-on)"; it is empty if that cannot be read.
func uptime(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return " (" + f[0] + "s after kernel start)"
}

func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprint(s)
}

// BlockDevices lists the block devices in a sysfs class directory
// (/sys/class/block), without partitions, sorted.
func BlockDevices(sysBlock string) ([]string, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(sysBlock, e.Name(), "partition")); err == nil {
			continue
		}
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out, nil
}

// boardPlatform is the part of a board profile (package boards, JSON) the
// platform reads before any flow runs: the modules to load and the
// watchdog. The rest is the flow's business.
type boardPlatform struct {
	Modules  []string `json:"modules"`
	Watchdog *struct {
		Device         string `json:"device"`
		TimeoutSeconds int    `json:"timeout_seconds"`
	} `json:"watchdog"`
}

// readBoardPlatform parses what the platform needs from a board profile;
// an empty profile is an empty board.
func readBoardPlatform(profile []byte) (boardPlatform, error) {
	var p boardPlatform
	if len(profile) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(profile, &p); err != nil {
		return boardPlatform{}, fmt.Errorf("pid1: board profile: %w", err)
	}
	return p, nil
}

// runFlow runs flow once and turns a panic into ErrFlowPanic: PID 1 must
// not die. (A panic in a goroutine the flow started cannot be caught; the
// kernel panics and the watchdog, or panic=N, resets the board.)
func runFlow(ctx context.Context, flow Flow, env *Env) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrFlowPanic, r, debug.Stack())
		}
	}()
	return flow(ctx, env)
}

// supervise runs flow until ctx is done (never, on a board): a failed
// attempt is logged and retried after a backoff, during which the
// supervisor itself keeps the watchdog fed; an attempt that returns nil
// reboots the board. If the reboot fails, the watchdog is let go so the
// hardware resets the board.
func supervise(ctx context.Context, env *Env, flow Flow, b *Backoff, sleep func(context.Context, time.Duration)) {
	for attempt := 1; ctx.Err() == nil; attempt++ {
		env.Alive()
		start := time.Now()
		err := runFlow(ctx, flow, env)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			env.Log.Printf("done, rebooting")
			err := env.Reboot()
			env.Log.Printf("reboot failed: %v; waiting for the watchdog", err)
			env.Watchdog.Stop()
			<-ctx.Done()
			return
		}
		// An attempt that ran a while got somewhere: start the waits over.
		if time.Since(start) > b.Max {
			b.Reset()
		}
		d := b.Next()
		env.Log.Printf("attempt %d failed: %v; trying again in %v", attempt, err, d)
		env.Alive()
		sleep(ctx, d)
	}
}

// sleepAlive waits d or until ctx is done, feeding the watchdog meanwhile.
func sleepAlive(env *Env) func(context.Context, time.Duration) {
	return func(ctx context.Context, d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		tick := time.NewTicker(env.AliveEvery())
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				return
			case <-tick.C:
				env.Alive()
			}
		}
	}
}
