package install

// EnvStore is a bootloader environment (U-Boot, GRUB) that an env step
// changes. Apply sets and removes variables and makes the change durable
// before it returns, in one update: a power cut leaves the old
// environment or the new one. The bootenv package provides the
// implementations.
type EnvStore interface {
	Apply(set map[string]string, unset []string) error
	// Check is Apply without writing anything: the plan runs it, so
	// that an env step that cannot succeed (a name or value the format
	// cannot hold, a change too big for the environment, no valid copy)
	// is refused before the first write of the install.
	Check(set map[string]string, unset []string) error
}

// EnvTarget says which environment an env step names.
type EnvTarget struct {
	Name string // the step's target name: a bootenv entry of the board profile
	// Path is set when the command line gave the target (--target
	// NAME=PATH): a file or device holding the environment.
	Path string
	// Create makes an environment with no valid copy load as a new,
	// empty one (the step's create: a blank board).
	Create bool
}

// EnvOpener finds the environment an env step changes (package boardenv
// opens a board profile's). It is called while planning, so a missing
// environment is found before anything is written. If the returned store
// is also an io.Closer, it is closed after the install.
type EnvOpener func(EnvTarget) (EnvStore, error)
