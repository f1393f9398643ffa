package rescue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-updater/lifeboat/boardenv"
	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/network"
	"github.com/lifeboat-updater/lifeboat/partitions"
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
func InstallFlow() Flow { return (&Installer{}).Flow }

// FlowError is why an attempt failed: its stage, and the lifeboat command's
// exit code for it (docs/cli.md, "Exit codes"), so the console says the
// same class of failure as the command line tool would.
type FlowError struct {
	Stage string // board, trust store, network, source, bundle, plan, install
	Code  int
	Err   error
}

func (e *FlowError) Error() string {
	return fmt.Sprintf("%s failed, exit %d (%s): %s", e.Stage, e.Code, exitcode.Class(e.Code), oneLine(e.Err.Error()))
}

func (e *FlowError) Unwrap() error { return e.Err }

// oneLine keeps a reason on one console line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func flowFail(stage string, code int, err error) error {
	return &FlowError{Stage: stage, Code: code, Err: err}
}

// Flow is one attempt; see Installer.
func (in *Installer) Flow(ctx context.Context, env *Env) error {
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
func (in *Installer) loadBoard(env *Env) (*boards.Profile, error) {
	b := env.BoardProfile
	path := pathOr(in.BoardProfile, BoardProfilePath)
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
func (in *Installer) sayReason(ctx context.Context, env *Env, board *boards.Profile, rec *recoveryEnv, w *eventWriters) Decision {
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

// factoryReset wipes the state partitions; nil lets the board reboot.
func (in *Installer) factoryReset(ctx context.Context, env *Env, board *boards.Profile, w *eventWriters) error {
	env.AliveFor(2 * time.Minute) // a discard of a large partition can take a while
	start := time.Now()
	wiped, err := FactoryReset(ctx, board, in.Resolver)
	names := make([]string, len(wiped))
	for i, x := range wiped {
		names[i] = x.Name
		env.Log.Printf("factory reset: wiped %s", x)
	}
	env.Alive()
	if err != nil {
		code := exitcode.TargetIO
		if errors.Is(err, ErrNoState) {
			code = exitcode.NoTarget
		}
		w.emit("error", map[string]any{"reason": oneLine(err.Error()), "exit_code": code})
		return flowFail("factory reset", code, err)
	}
	sync := in.Sync
	if sync == nil {
		sync = syncFS
	}
	sync()
	env.Log.Printf("%s%d state partition(s) in %.1fs (%s); the system partitions are untouched", MsgFactoryReset, len(wiped), time.Since(start).Seconds(), strings.Join(names, ", "))
	w.emit("factory-reset", map[string]any{"wiped": names, "duration_seconds": time.Since(start).Seconds()})
	return nil
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

// bringUpNetwork configures the network once per boot when a source needs
// it, and returns the sources worth trying: without a network, only the
// local ones. It fails only when no source is left.
func (in *Installer) bringUpNetwork(ctx context.Context, env *Env, srcs []source.Source, logf func(string, ...any)) ([]source.Source, error) {
	var local []source.Source
	for _, s := range srcs {
		if isLocal(s) {
			local = append(local, s)
		}
	}
	if len(local) == len(srcs) {
		if !in.netUp {
			env.Log.Printf("network: not needed (local sources only)")
		}
		return srcs, nil
	}
	if in.netUp {
		return srcs, nil
	}
	ip, err := ipParam(env.Cmdline)
	if err != nil {
		env.Log.Printf("%v; using DHCP", err)
		ip = nil
	}
	configure := in.Network
	if configure == nil {
		configure = network.Configure
	}
	start := time.Now()
	_, err = configure(ctx, network.Config{IP: ip, ResolvConf: network.DefaultResolvConf, Logf: logf})
	if err == nil {
		in.netUp = true
		env.Log.Printf("network: up in %v", time.Since(start).Round(time.Millisecond))
		return srcs, nil
	}
	if len(local) > 0 {
		env.Log.Printf("network: %s; trying the local sources only", oneLine(err.Error()))
		return local, nil
	}
	return nil, err
}

// isLocal reports whether a source needs no network.
func isLocal(s source.Source) bool {
	switch s.(type) {
	case *source.File, *source.Media:
		return true
	}
	return false
}

// ipParam returns the kernel's ip= (or nfsaddrs=) parameter, the last one
// winning as in the kernel; nil when there is none.
func ipParam(cmdline []Param) (*network.IPParam, error) {
	var val string
	found := false
	for _, p := range cmdline {
		if p.Key == "ip" || p.Key == "nfsaddrs" {
			val, found = p.Value, true
		}
	}
	if !found {
		return nil, nil
	}
	return network.ParseIP(val)
}

// install verifies the bundle as it streams in, plans and runs it.
func (in *Installer) install(ctx context.Context, env *Env, board *boards.Profile, trust *bundle.TrustStore, st *source.Stream, rec *recoveryEnv, w *eventWriters) (err error) {
	events := w.observer()
	console := install.NewConsole(logWriter{env.Log}, false)
	console.PlainInterval = 2 * time.Second
	observe := install.Observers(
		func(install.Event) { env.Alive() }, // every event is progress for the watchdog
		events,
		func(e install.Event) {
			if e.Done == nil { // the flow prints its own summary
				console.Observe(e)
			}
		},
		func(e install.Event) {
			// A step that rewrote the environment's place (the grubenv
			// partition of a factory bundle) took the marker with it.
			if e.StepDone == nil || !rec.hasEnv() {
				return
			}
			again, err := rec.ensureMarker()
			switch {
			case err != nil && !unreadable(err):
				env.Log.Printf("transaction marker: %v", err)
			case again:
				env.Log.Printf("bootenv %s: transaction marker set again (%s=%s) after step %d", rec.name, rec.rec.Marker, rec.rec.MarkerValue, e.StepDone.Step)
				w.emit("bootenv", map[string]any{"bootenv": rec.name, "why": "marker", "marker": rec.rec.Marker})
			}
		},
	)
	defer func() {
		if err != nil {
			var fe *FlowError
			if errors.As(err, &fe) {
				e := install.ErrorEvent(fe.Err)
				e.Error.ExitCode = fe.Code
				events(e)
				console.Observe(e)
			}
		}
	}()

	br, err := bundle.NewReader(st, trust)
	if err != nil {
		return flowFail("bundle", install.ExitCode(err), fmt.Errorf("%s: %w", st.Name, err))
	}
	m := br.Manifest()
	env.Log.Printf("installing %s %s from %s", m.Product, m.Version, st.Name)
	observe(install.StartEvent(br, st.Name))

	r := in.Resolver
	cfg := install.Config{
		Board:    board,
		Resolver: r,
		Env: func(t install.EnvTarget) (install.EnvStore, error) {
			return boardenv.Open(board, r, t.Name, t.Path)
		},
		Observer: observe,
	}
	svInEnv := rec.hasEnv() && rec.rec.SecurityVersion != ""
	if svInEnv {
		f, err := in.seedSecurityVersion(env, board, rec)
		if err != nil {
			return flowFail("plan", exitcode.Rollback, err)
		}
		cfg.SecurityVersionFile = f
	}
	if in.Install != nil {
		in.Install(&cfg)
	}
	plan, err := install.NewPlan(br, cfg)
	if err != nil {
		return flowFail("plan", install.ExitCode(err), err)
	}
	if err := in.begin(env, rec, w); err != nil {
		return flowFail("bootenv", exitcode.TargetIO, err)
	}
	res, err := plan.Execute(ctx)
	if err != nil {
		return flowFail("install", install.ExitCode(err), err)
	}
	var written, skipped int
	for _, s := range res.Steps {
		written += s.WrittenChunks
		skipped += s.SkippedChunks
	}
	sync := in.Sync
	if sync == nil {
		sync = syncFS
	}
	sync()
	env.Log.Printf("%s%s %s in %.1fs: wrote %d chunks (%s), skipped %d chunks (%s), zeroed %s; security version %d; peak memory %s",
		MsgInstalled, m.Product, m.Version, res.Duration.Seconds(),
		written, mbytes(res.WrittenBytes), skipped, mbytes(res.SkippedBytes), mbytes(res.ZeroedBytes), res.SecurityVersion, peakMemory(res.PeakRSS))
	if env.Params["hold"] == "finish" {
		in.hold(ctx, env)
	}
	sv := int64(-1)
	if svInEnv {
		sv = int64(res.SecurityVersion)
	}
	if err := in.finish(env, rec, sv, w); err != nil {
		return flowFail("bootenv", exitcode.TargetIO, err)
	}
	return nil
}

// eventWriters are where the flow's JSON-lines events go: EventsPath
// and, with lifeboat.events=console, the console.
type eventWriters struct {
	mu sync.Mutex
	ws []io.Writer
}

// observer writes the install's events.
func (w *eventWriters) observer() install.Observer {
	var obs []install.Observer
	for _, x := range w.ws {
		obs = append(obs, install.JSONLines(x))
	}
	return install.Observers(obs...)
}

// emit writes one event of the flow's own (reason, bootenv,
// factory-reset) in the install events' form: "event", "time", fields.
func (w *eventWriters) emit(kind string, fields map[string]any) {
	if w == nil {
		return
	}
	m := map[string]any{"event": kind, "time": time.Now().Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, x := range w.ws {
		x.Write(b)
	}
}

// eventWriters opens EventsPath (appending: one attempt after another)
// and, with lifeboat.events=console, the console.
func (in *Installer) eventWriters(env *Env) (*eventWriters, func()) {
	w := &eventWriters{}
	var closers []io.Closer
	if p := pathOr(in.EventsPath, EventsPath); p != "-" {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			env.Log.Printf("events: %v", err)
		} else if f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			env.Log.Printf("events: %v", err)
		} else {
			w.ws = append(w.ws, f)
			closers = append(closers, f)
		}
	}
	if env.Params["events"] == "console" {
		c := in.Console
		if c == nil {
			if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
				c = f
				closers = append(closers, f)
			} else {
				c = os.Stdout
			}
		}
		w.ws = append(w.ws, &prefixWriter{w: c, prefix: EventPrefix})
	}
	return w, func() {
		for _, c := range closers {
			c.Close()
		}
	}
}

// prefixWriter puts a prefix before each line written; JSONLines writes
// one whole line per Write.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var out []byte
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			out = append(append(out, p.prefix...), line...)
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// logWriter turns the install console's lines into log lines.
type logWriter struct{ log Logger }

func (w logWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line = strings.TrimRight(line, "\r"); line != "" {
			w.log.Printf("%s", line)
		}
	}
	return len(b), nil
}

func pathOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// mbytes formats a byte count in decimal units, as the install console
// does.
func mbytes(n int64) string {
	switch f := float64(n); {
	case f >= 1e9:
		return fmt.Sprintf("%.2f GB", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.1f MB", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1f kB", f/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// ReadEvents reads the JSON-lines events a flow wrote (EventsPath, or the
// console lines after EventPrefix), for tests and reports: each is a map
// of the event's fields.
func ReadEvents(r io.Reader) ([]map[string]any, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, EventPrefix); i >= 0 {
			line = line[i+len(EventPrefix):]
		}
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return out, fmt.Errorf("rescue: event %q: %w", line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// peakMemory formats the install's peak resident memory for the summary:
// a board maker sizes the rescue's RAM from it.
func peakMemory(n int64) string {
	if n <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d kB", n>>10)
}
