// Package cli is the lifeboat command: install, plan and verify a bundle,
// and read or change bootloader environments (env),
// on the device it runs on (or on any Linux host, with --target). Main is
// all that cmd/lifeboat calls; each subcommand is a run function that
// tests call in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/lifeboat-updater/lifeboat/boardenv"
	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/handlers/flash"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/source"
)

// DefaultKeys is where the rescue image keeps the keys it trusts.
const DefaultKeys = "/etc/lifeboat/keys"

// codedError gives an error the exit code of its kind where the install
// package's mapping cannot tell it: command line mistakes, a missing trust
// store.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// usagef reports a command line mistake (exit code 2).
func usagef(format string, a ...any) error {
	return &codedError{exitcode.Usage, fmt.Errorf(format, a...)}
}

// Deps are the parts of the command that the rescue image, other builds
// or tests replace.
type Deps struct {
	// OpenURL streams a bundle from an http(s) URL.
	OpenURL func(ctx context.Context, url string) (io.ReadCloser, error)
	// IsTerminal reports whether w is a terminal, for the live progress
	// line.
	IsTerminal func(w io.Writer) bool
	// Resolver finds the board profile's storage devices.
	Resolver boards.Resolver
	// Flash reaches raw flash and UBI for the profile's mtd, ubi and
	// ubi_image targets; nil: the system's (handlers/flash).
	Flash flash.Flash
}

// DefaultDeps are the parts used by Main.
func DefaultDeps() Deps {
	return Deps{OpenURL: httpOpen, IsTerminal: isTerminal}
}

// Main runs the lifeboat command with args (without the program name) and
// returns its exit code: one of the install.Exit codes. Every failure
// prints one line "lifeboat: <reason>" on stderr.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return MainWith(ctx, args, stdin, stdout, stderr, DefaultDeps())
}

// MainWith is Main with deps.
func MainWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, deps Deps) int {
	if deps.OpenURL == nil {
		deps.OpenURL = httpOpen
	}
	if deps.IsTerminal == nil {
		deps.IsTerminal = func(io.Writer) bool { return false }
	}
	err := run(ctx, args, stdin, stdout, stderr, deps)
	if err == nil {
		return exitcode.OK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitcode.OK
	}
	fmt.Fprintf(stderr, "lifeboat: %s\n", bundle.OneLine(err.Error()))
	return exitCode(err)
}

func exitCode(err error) int {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return install.ExitCode(err)
}

const usage = `usage: lifeboat COMMAND [flags] BUNDLE

commands:
  install BUNDLE   check, then write the bundle to this device
  plan BUNDLE      check and print what install would write where; writes nothing
  verify BUNDLE    compare this device with the bundle, chunk by chunk
  env print|set|unset
                   read or change a bootloader environment (U-Boot, GRUB)

BUNDLE is a file, "-" for standard input, or an http(s) URL.
Run "lifeboat COMMAND -h" for the flags; docs/cli.md has the exit codes.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, deps Deps) error {
	if len(args) == 0 {
		return usagef("no command (want install, plan, verify or env; see lifeboat help)")
	}
	switch args[0] {
	case "install", "plan", "verify":
		return runBundleCommand(ctx, args[0], args[1:], stdin, stdout, stderr, deps)
	case "env":
		return runEnvCommand(args[1:], stdout, deps)
	case "help", "-h", "-help", "--help":
		if len(args) == 2 && args[0] == "help" {
			// "help COMMAND" is "COMMAND -h".
			return run(ctx, []string{args[1], "-h"}, stdin, stdout, stderr, deps)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usagef("unknown command %s (want install, plan, verify or env)", bundle.Printable(args[0]))
}

// options are the flags of install, plan and verify.
type options struct {
	keys       multiFlag
	board      string
	boardName  string
	targets    multiFlag
	secVerFile string
	onDevice   bool
	noSkip     bool
	verify     bool
	buffered   bool
	events     string
	workers    int
	progress   string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (o *options) flags(cmd string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lifeboat "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&o.keys, "keys", "trusted public key `FILE` or directory of *.pub (repeatable; default "+DefaultKeys+")")
	fs.StringVar(&o.board, "board", "", "board profile: a JSON `FILE` or a built-in name (default "+boards.DefaultPath+")")
	fs.StringVar(&o.boardName, "board-name", "", "board `NAME[:REV]` for the compatibility check, instead of the profile's")
	fs.Var(&o.targets, "target", "`NAME=PATH`: write the step target NAME to PATH (repeatable)")
	fs.StringVar(&o.secVerFile, "security-version-file", "", "`FILE` holding the device's security version (default: the profile's, on the device)")
	fs.BoolVar(&o.onDevice, "on-device", false, "this runs on the board --board describes: use the profile's devices and security version (default when --board is not given and "+boards.DefaultPath+" exists)")
	fs.IntVar(&o.workers, "workers", 0, "chunk verify/decompress goroutines (default: one per CPU)")
	fs.StringVar(&o.events, "events", "", "write JSON-lines events to `FILE`, or to a descriptor with fd:N")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: auto, line (redrawn), plain (a line every few seconds) or none")
	if cmd == "install" {
		fs.BoolVar(&o.noSkip, "no-skip", false, "write every chunk, even those the target already holds")
		fs.BoolVar(&o.verify, "verify", false, "read every image back after writing it and compare")
		fs.BoolVar(&o.buffered, "buffered", false, "write to block devices through the page cache instead of with O_DIRECT")
	}
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: lifeboat %s [flags] BUNDLE\n\nflags:\n", cmd)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses flags placed before or after the positional arguments.
// On -h or --help the flag package has printed the usage (fs.Usage) once;
// parse returns flag.ErrHelp, which Main turns into exit code 0.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(args)-len(rest) > 0 && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (o *options) config(deps Deps) (install.Config, error) {
	cfg := install.Config{
		SecurityVersionFile: o.secVerFile,
		Flash:               deps.Flash,
		Workers:             o.workers,
		NoSkip:              o.noSkip,
		Verify:              o.verify,
		Buffered:            o.buffered,
	}
	if o.workers < 0 {
		return cfg, usagef("--workers %d", o.workers)
	}
	if len(o.targets) > 0 {
		cfg.Targets = map[string]string{}
	}
	for _, t := range o.targets {
		name, path, ok := strings.Cut(t, "=")
		if !ok || name == "" || path == "" {
			return cfg, usagef("--target %q, want NAME=PATH", t)
		}
		cfg.Targets[name] = path
	}
	if o.boardName != "" {
		cfg.BoardName, cfg.BoardRevision, _ = strings.Cut(o.boardName, ":")
	}
	board, err := loadBoard(o.board)
	if err != nil {
		return cfg, err
	}
	if board == nil && cfg.BoardName == "" {
		return cfg, usagef("no board profile (%s does not exist): give --board FILE|NAME or --board-name NAME[:REV]", boards.DefaultPath)
	}
	r := deps.Resolver
	r.Given = cfg.Targets
	if board != nil && o.host() {
		// The profile describes the board, and its devices, paths and
		// security version file are the board's: on a host they would
		// be the host's own. Only what the command line gives is
		// written, and the security version only with
		// --security-version-file.
		r.Host = true
		b := *board
		b.SecurityVersionFile = ""
		board = &b
	}
	cfg.Board, cfg.Resolver = board, r
	cfg.Env = func(t install.EnvTarget) (install.EnvStore, error) {
		return boardenv.Open(board, r, boardenv.Target{Name: t.Name, Path: t.Path, Create: t.Create})
	}
	return cfg, nil
}

// host reports whether the command runs on a host rather than on the
// board its profile describes: --board names a profile and --on-device
// does not say otherwise. Without --board, the profile is the device's
// own (boards.DefaultPath, installed with Lifeboat on the board).
func (o *options) host() bool { return o.board != "" && !o.onDevice }

// loadBoard loads --board: a file if one exists at that path, else a
// built-in profile; with no flag, the rescue's profile if it exists.
func loadBoard(arg string) (*boards.Profile, error) {
	if arg == "" {
		if _, err := os.Stat(boards.DefaultPath); err != nil {
			return nil, nil
		}
		arg = boards.DefaultPath
	}
	if _, err := os.Stat(arg); err == nil || strings.ContainsAny(arg, "/.") {
		p, err := boards.Load(arg)
		if err != nil {
			return nil, usagef("board profile: %w", err)
		}
		return p, nil
	}
	p, err := boards.Builtin(arg)
	if err != nil {
		return nil, usagef("%w", err)
	}
	return p, nil
}

// openEvents opens the --events destination.
func openEvents(spec string) (io.WriteCloser, error) {
	if n, ok := strings.CutPrefix(spec, "fd:"); ok {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < 0 {
			return nil, usagef("--events %q, want FILE or fd:N", spec)
		}
		f := os.NewFile(uintptr(fd), "fd:"+n)
		if f == nil {
			return nil, usagef("--events %q: no such descriptor", spec)
		}
		return f, nil
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, usagef("--events: %w", err)
	}
	return f, nil
}

// bundleSource is an opened bundle and what to close after it.
type bundleSource struct {
	br     *bundle.Reader
	name   string
	closer io.Closer
}

func openBundle(ctx context.Context, arg string, stdin io.Reader, trust *bundle.TrustStore, deps Deps) (*bundleSource, error) {
	switch {
	case arg == "-":
		br, err := bundle.NewReader(stdin, trust)
		if err != nil {
			return nil, fmt.Errorf("bundle from standard input: %w", err)
		}
		return &bundleSource{br: br, name: "-"}, nil
	case strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://"):
		rc, err := deps.OpenURL(ctx, arg)
		if err != nil {
			return nil, err
		}
		br, err := bundle.NewReader(rc, trust)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("bundle %s: %w", arg, err)
		}
		return &bundleSource{br: br, name: arg, closer: rc}, nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, usagef("bundle: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var br *bundle.Reader
	if fi.Mode().IsRegular() {
		br, err = bundle.NewReaderAt(f, fi.Size(), trust)
	} else {
		// A pipe or a character device: read it as a stream.
		br, err = bundle.NewReader(f, trust)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bundle %s: %w", arg, err)
	}
	return &bundleSource{br: br, name: arg, closer: f}, nil
}

// httpOpen streams a bundle over HTTP(S) with the rescue's client
// (package source): it resumes with Range requests over dropped
// connections, checks that the file did not change meanwhile, and trusts
// the system's CA roots.
func httpOpen(ctx context.Context, url string) (io.ReadCloser, error) {
	h := &source.HTTP{URL: url}
	st, err := h.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", h, err)
	}
	return st, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func loadTrust(paths []string) (*bundle.TrustStore, error) {
	if len(paths) == 0 {
		paths = []string{DefaultKeys}
	}
	t, err := bundle.LoadTrustStore(paths...)
	if err != nil {
		// Without keys nothing can be trusted.
		return nil, &codedError{exitcode.Untrusted, err}
	}
	return t, nil
}
