package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/lifeboat-updater/lifeboat/boardenv"
	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install"
)

// ErrNotSet reports `lifeboat env print NAME` of a variable the
// environment does not hold (exit 1, as fw_printenv).
var ErrNotSet = errors.New("not set")

const envUsage = `usage: lifeboat env print [-n] [flags] [NAME...]
       lifeboat env set   [flags] NAME=VALUE... | NAME VALUE
       lifeboat env unset [flags] NAME...

The environment is one of:
  --board FILE|NAME [--bootenv NAME] [--storage NAME=PATH]
                       a bootenv entry of the board profile (default: the
                       profile's recovery entry, else its only one)
  --config FILE        a fw_env.config (U-Boot)
  --grub FILE [--offset N]
                       a GRUB environment block: a 1024-byte grubenv file, or
                       the block at byte N of a file or device
`

// envOptions are the flags of lifeboat env.
type envOptions struct {
	board, bootenvName, config, grub string
	offset                           int64
	storage                          multiFlag
	onDevice                         bool
	valueOnly, create                bool
}

// runEnvCommand is `lifeboat env print|set|unset`: the bootloader
// environment the rescue and env steps change, read and changed by hand.
func runEnvCommand(args []string, stdout io.Writer, deps Deps) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, envUsage)
		return usagef("env needs print, set or unset")
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fmt.Fprint(stdout, envUsage)
		return flag.ErrHelp
	}
	if sub != "print" && sub != "set" && sub != "unset" {
		return usagef("env %q, want print, set or unset", sub)
	}
	var o envOptions
	fs := flag.NewFlagSet("lifeboat env "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.board, "board", "", "board profile: a JSON `FILE` or a built-in name (default "+boards.DefaultPath+")")
	fs.StringVar(&o.bootenvName, "bootenv", "", "the profile's bootenv entry `NAME`")
	fs.Var(&o.storage, "storage", "`NAME=PATH`: the profile's storage device NAME is PATH, e.g. a disk image (repeatable)")
	fs.BoolVar(&o.onDevice, "on-device", false, "this runs on the board --board describes: use the profile's devices")
	fs.StringVar(&o.config, "config", "", "a fw_env.config `FILE` (U-Boot)")
	fs.StringVar(&o.grub, "grub", "", "a GRUB environment block `FILE`")
	fs.Int64Var(&o.offset, "offset", 0, "with --grub: the block's byte `OFFSET` in FILE")
	if sub == "print" {
		fs.BoolVar(&o.valueOnly, "n", false, "print the values only, without NAME=")
	} else {
		fs.BoolVar(&o.create, "create", false, "start from an empty environment when none is valid (blank storage)")
	}
	fs.Usage = func() {
		fmt.Fprint(stdout, envUsage+"\nflags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	set, unset, err := envChanges(sub, pos)
	if err != nil {
		return err
	}
	store, where, err := o.open(deps)
	if err != nil {
		return err
	}
	defer store.Close()

	switch sub {
	case "print":
		env, err := store.Load()
		if err != nil {
			return envError(where, err)
		}
		vars := env.Vars()
		names := pos
		if len(names) == 0 {
			names = slices.Sorted(maps.Keys(vars))
		}
		var missing []string
		for _, n := range names {
			v, ok := vars[n]
			switch {
			case !ok:
				missing = append(missing, n)
			case o.valueOnly:
				fmt.Fprintln(stdout, v)
			default:
				fmt.Fprintf(stdout, "%s=%s\n", n, v)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s: %s %w", where, strings.Join(missing, ", "), ErrNotSet)
		}
		return nil
	}
	env, err := store.Load()
	if err != nil && o.create && (errors.Is(err, bootenv.ErrBadCRC) || errors.Is(err, bootenv.ErrCorrupt)) {
		env, err = store.New(), nil
	}
	if err != nil {
		return envError(where, err)
	}
	for _, n := range unset {
		if err := env.Unset(n); err != nil {
			return envError(where, err)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(set)) {
		if err := env.Set(n, set[n]); err != nil {
			return envError(where, err)
		}
	}
	if err := store.Save(env); err != nil {
		return envError(where, err)
	}
	return nil
}

// envChanges reads set's NAME=VALUE (or NAME VALUE, as fw_setenv takes
// it) and unset's NAMEs.
func envChanges(sub string, pos []string) (map[string]string, []string, error) {
	switch sub {
	case "set":
		if len(pos) == 0 {
			return nil, nil, usagef("env set needs NAME=VALUE")
		}
		if len(pos) == 2 && !strings.Contains(pos[0], "=") {
			return map[string]string{pos[0]: pos[1]}, nil, nil
		}
		set := map[string]string{}
		for _, a := range pos {
			n, v, ok := strings.Cut(a, "=")
			if !ok || n == "" {
				return nil, nil, usagef("env set: %q, want NAME=VALUE", a)
			}
			set[n] = v
		}
		return set, nil, nil
	case "unset":
		if len(pos) == 0 {
			return nil, nil, usagef("env unset needs a NAME")
		}
		for _, n := range pos {
			if n == "" || strings.Contains(n, "=") {
				return nil, nil, usagef("env unset: %q is not a variable name", n)
			}
		}
		return nil, pos, nil
	}
	return nil, nil, nil
}

// open finds the environment the flags name.
func (o *envOptions) open(deps Deps) (bootenv.Store, string, error) {
	given := 0
	for _, s := range []string{o.config, o.grub} {
		if s != "" {
			given++
		}
	}
	if given > 1 || given == 1 && (o.board != "" || o.bootenvName != "" || len(o.storage) > 0) {
		return nil, "", usagef("give one of --board, --config and --grub")
	}
	if o.offset != 0 && o.grub == "" {
		return nil, "", usagef("--offset goes with --grub")
	}
	switch {
	case o.config != "":
		s, err := bootenv.Open(bootenv.Config{Type: bootenv.UBoot, FWEnvConfig: o.config})
		if err != nil {
			return nil, "", envError(o.config, err)
		}
		return s, o.config, nil
	case o.grub != "":
		if o.offset < 0 {
			return nil, "", usagef("--offset %d", o.offset)
		}
		cfg := bootenv.Config{Type: bootenv.GRUB, Path: o.grub, Offset: o.offset}
		s, err := bootenv.Open(cfg)
		if err != nil {
			return nil, "", envError(o.grub, err)
		}
		return s, o.grub, nil
	}
	board, err := loadBoard(o.board)
	if err != nil {
		return nil, "", err
	}
	if board == nil {
		return nil, "", usagef("no board profile (%s does not exist): give --board, --config or --grub", boards.DefaultPath)
	}
	r := deps.Resolver
	r.Given = map[string]string{}
	for _, s := range o.storage {
		n, p, ok := strings.Cut(s, "=")
		if _, known := board.Storage[n]; !ok || !known || p == "" {
			return nil, "", usagef("--storage %q, want NAME=PATH with NAME a storage device of board %s", s, board.Name)
		}
		r.Given[n] = p
	}
	// On a host the profile's devices are the host's own: only --storage
	// ones are used (see options.host).
	r.Host = o.board != "" && !o.onDevice
	name := o.bootenvName
	if name == "" {
		if name, err = board.RecoveryEnv(); err != nil {
			return nil, "", usagef("board %s: %w; give --bootenv NAME", board.Name, err)
		}
	}
	if _, ok := board.BootEnv[name]; !ok {
		return nil, "", usagef("board %s has no bootenv %q (it has %s)", board.Name, name, strings.Join(slices.Sorted(maps.Keys(board.BootEnv)), ", "))
	}
	s, err := boardenv.Open(board, r, boardenv.Target{Name: name})
	if err != nil {
		return nil, "", envError("bootenv "+name, err)
	}
	return s, "bootenv " + name, nil
}

// envError gives a bootenv failure its exit code: a missing place is a
// missing target (9), an environment that does not decode is corrupt (5),
// one that cannot take the change too small (10), a refused name or value
// a usage error (2).
func envError(where string, err error) error {
	code := install.ExitCode(err)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, boards.ErrNoDevice), errors.Is(err, install.ErrTargetMissing):
		code = exitcode.NoTarget
	case errors.Is(err, bootenv.ErrBadCRC), errors.Is(err, bootenv.ErrCorrupt):
		err = fmt.Errorf("%w (an empty one can be made with env set --create)", err)
		code = exitcode.Corrupt
	case errors.Is(err, bootenv.ErrTooFull), errors.Is(err, bootenv.ErrSize):
		code = exitcode.TooSmall
	case errors.Is(err, bootenv.ErrInvalidName), errors.Is(err, bootenv.ErrInvalidValue), errors.Is(err, bootenv.ErrConfig):
		code = exitcode.Usage
	}
	if strings.HasPrefix(err.Error(), where) {
		return &codedError{code, err}
	}
	return &codedError{code, fmt.Errorf("%s: %w", where, err)}
}
