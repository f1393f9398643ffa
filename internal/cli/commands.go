package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/install"
)

// runBundleCommand runs install, plan or verify.
func runBundleCommand(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer, deps Deps) (err error) {
	var o options
	fs := o.flags(cmd, stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s takes one BUNDLE (a file, - or a URL), got %d arguments", cmd, len(pos))
	}

	var observers []install.Observer
	if o.events != "" {
		w, oerr := openEvents(o.events)
		if oerr != nil {
			return oerr
		}
		defer w.Close()
		events := install.JSONLines(w)
		observers = append(observers, events)
		// Every failure from here on is an error event too.
		defer func() {
			if err != nil {
				e := install.ErrorEvent(err)
				e.Error.ExitCode = exitCode(err)
				events(e)
			}
		}()
	}
	var console *install.Console
	switch o.progress {
	case "auto":
		console = install.NewConsole(stdout, deps.IsTerminal(stdout))
	case "line", "plain":
		console = install.NewConsole(stdout, o.progress == "line")
	case "none":
	default:
		return usagef("--progress %q, want auto, line, plain or none", o.progress)
	}
	if console != nil {
		observers = append(observers, console.Observe)
		defer func() {
			if err != nil {
				// Ends a live progress line before the reason goes to
				// stderr.
				console.Observe(install.ErrorEvent(err))
			}
		}()
	}
	observe := install.Observers(observers...)

	cfg, err := o.config(deps)
	if err != nil {
		return err
	}
	cfg.Observer = observe
	cfg.ReadOnly = cmd == "verify"
	trust, err := loadTrust(o.keys)
	if err != nil {
		return err
	}
	src, err := openBundle(ctx, pos[0], stdin, trust, deps)
	if err != nil {
		return err
	}
	if src.closer != nil {
		defer src.closer.Close()
	}
	observe(install.StartEvent(src.br, src.name))

	plan, err := install.NewPlan(src.br, cfg)
	if err != nil {
		return err
	}
	defer plan.Close()
	switch cmd {
	case "plan":
		fmt.Fprintf(stdout, "plan for board %s: all checks passed, nothing written\n", plan.Board())
		return nil
	case "verify":
		res, err := plan.Verify(ctx)
		if res != nil {
			for _, d := range res.Differences {
				fmt.Fprintf(stdout, "differs: step %d image %q chunk %d at offset %d of %s\n", d.Step, d.Image, d.Chunk, d.Offset, bundle.Printable(d.Target))
			}
			if res.Differs > len(res.Differences) {
				fmt.Fprintf(stdout, "... and %d more\n", res.Differs-len(res.Differences))
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "verify: the device matches the bundle (%d chunks)\n", res.Chunks)
		return nil
	}
	_, err = plan.Execute(ctx)
	return err
}
