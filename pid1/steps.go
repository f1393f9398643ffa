package pid1

import (
	"errors"
	"fmt"
	"io/fs"
)

// System is the part of the kernel the early boot steps use. The real one
// makes system calls; tests record the calls on a fake.
type System interface {
	MkdirAll(path string, perm fs.FileMode) error
	Mount(source, target, fstype string, flags uintptr, data string) error
	Symlink(oldname, newname string) error
}

// Step is one early boot step, described as data (like u-root's libinit
// Creators) so the table can be read, printed and tested.
type Step interface {
	Run(sys System) error
	String() string
}

// Dir makes a directory and its parents.
type Dir struct {
	Path string
	Mode fs.FileMode
}

func (d Dir) Run(sys System) error { return sys.MkdirAll(d.Path, d.Mode) }

func (d Dir) String() string { return fmt.Sprintf("dir %s %#o", d.Path, d.Mode) }

// Mount mounts a file system, making its mount point first.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	// Optional steps may fail (a kernel without debugfs): the failure is
	// logged, not returned.
	Optional bool
}

func (m Mount) Run(sys System) error {
	if err := sys.MkdirAll(m.Target, 0o755); err != nil {
		return err
	}
	return sys.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data)
}

func (m Mount) String() string {
	s := fmt.Sprintf("mount %s on %s type %s", m.Source, m.Target, m.FSType)
	if m.Data != "" {
		s += " (" + m.Data + ")"
	}
	return s
}

// Symlink makes Path a symbolic link to Target.
type Symlink struct {
	Target, Path string
}

func (s Symlink) Run(sys System) error {
	err := sys.Symlink(s.Target, s.Path)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

func (s Symlink) String() string { return fmt.Sprintf("symlink %s -> %s", s.Path, s.Target) }

// optional reports whether a step's failure may be ignored.
func optional(s Step) bool {
	m, ok := s.(Mount)
	return ok && m.Optional
}

// RunSteps runs every step, even after one fails (a rescue with /proc but
// no /run is still useful), and returns the failures of the required ones
// joined. Failures of optional steps go to log only.
func RunSteps(sys System, steps []Step, log Logger) error {
	var errs []error
	for _, s := range steps {
		err := s.Run(sys)
		switch {
		case err == nil:
		case optional(s):
			log.Printf("%s: %v (optional, going on)", s, err)
		default:
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
		}
	}
	return errors.Join(errs...)
}
