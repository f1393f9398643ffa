//go:build !linux

package boardenv

import (
	"errors"
	"fmt"

	"github.com/lifeboat-updater/lifeboat/boards"
)

// ErrNotBlockDevice means a bootenv entry's file lives in a filesystem on
// something that is not a block device.
var ErrNotBlockDevice = errors.New("boardenv: not a block device")

// errNoMount is why an environment file inside a filesystem cannot be
// reached here: mounting is Linux's.
var errNoMount = errors.New("boardenv: mounting a filesystem for a bootenv file needs Linux; give the mounted file with --target NAME=PATH")

type envMount struct{ dir string }

func (m *envMount) Dir() string  { return m.dir }
func (m *envMount) Close() error { return nil }

func openFilesystem(r boards.Resolver, dev string, number int, fstype string) (*envMount, error) {
	return nil, fmt.Errorf("%s: %w", dev, errNoMount)
}
