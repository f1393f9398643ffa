package rescue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-updater/lifeboat/boardenv"
	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/pid1"
	"github.com/lifeboat-updater/lifeboat/source"
)

// engineEvents is where the engine's events go while the flow runs a
// plan: the watchdog (every event is progress), the event writers, the
// console's progress line (the flow prints its own summary), and more,
// the flow's own. report sends a failed attempt's error event.
func (in *Installer) engineEvents(env *pid1.Env, w *eventWriters, more ...install.Observer) (observe install.Observer, report func(error)) {
	events := w.observer()
	console := install.NewConsole(logWriter{env.Log}, false)
	console.PlainInterval = 2 * time.Second
	obs := []install.Observer{
		func(install.Event) { env.Alive() },
		events,
		func(e install.Event) {
			if e.Done == nil {
				console.Observe(e)
			}
		},
	}
	observe = install.Observers(append(obs, more...)...)
	report = func(err error) {
		var fe *FlowError
		if errors.As(err, &fe) {
			e := install.ErrorEvent(fe.Err)
			e.Error.ExitCode = fe.Code
			events(e)
			console.Observe(e)
		}
	}
	return observe, report
}

// install verifies the bundle as it streams in, plans and runs it.
func (in *Installer) install(ctx context.Context, env *pid1.Env, board *boards.Profile, trust *bundle.TrustStore, st *source.Stream, rec *recoveryEnv, w *eventWriters) (err error) {
	observe, report := in.engineEvents(env, w, func(e install.Event) {
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
	})
	defer func() { report(err) }()

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
			return boardenv.Open(board, r, boardenv.Target{Name: t.Name, Path: t.Path, Create: t.Create})
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
		written, install.Bytes(res.WrittenBytes), skipped, install.Bytes(res.SkippedBytes), install.Bytes(res.ZeroedBytes), res.SecurityVersion, peakMemory(res.PeakRSS))
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

// peakMemory formats the install's peak resident memory for the summary:
// a board maker sizes the rescue's RAM from it.
func peakMemory(n int64) string {
	if n <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d kB", n>>10)
}
