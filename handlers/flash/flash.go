// Package flash finds the running system's raw flash for the install
// engine: it opens MTD devices by name (package handlers/mtd) and finds,
// attaches and detaches the UBI device on one (package handlers/ubi).
//
// It is its own package because it ties the two together: a UBI device
// is found by the MTD device it sits on, and the engine asks about both
// through one seam, Flash. System is the real one; tests give simulated
// flash (handlers/mtd/mtdtest, handlers/ubi/ubitest) behind the same
// interface.
package flash

import (
	"fmt"
	"io"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
)

// Flash reaches raw flash and UBI.
type Flash interface {
	// OpenMTD opens the MTD device called name: an MTD name, "mtdN" or a
	// /dev/mtdN path. With write it fails with an error wrapping
	// mtd.ErrReadOnly if the device cannot be written.
	OpenMTD(name string, write bool) (MTD, error)
	// AttachedUBI returns the UBI device attached to m, or nil if none
	// is.
	AttachedUBI(m MTD) (UBI, error)
	// AttachUBI attaches m to UBI and returns the new UBI device.
	AttachUBI(m MTD) (UBI, error)
	// DetachUBI closes and detaches u.
	DetachUBI(u UBI) error
}

// MTD is an open MTD device.
type MTD interface {
	mtd.Device
	io.Closer
}

// UBI is an open UBI device.
type UBI interface {
	ubi.Controller
	io.Closer
}

// System is the running system's raw flash: /dev/mtdN and the kernel's
// UBI.
var System Flash = system{}

type system struct{}

func (system) OpenMTD(name string, write bool) (MTD, error) {
	d, err := mtd.Open(name, write)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// mtdIndex is N of the /dev/mtdN that m was opened as.
func mtdIndex(m MTD) (int, error) {
	p, ok := m.(interface{ Path() string })
	if !ok {
		return 0, fmt.Errorf("%w: %v has no device path", mtd.ErrNotFound, m)
	}
	return mtd.Index(p.Path())
}

func (system) AttachedUBI(m MTD) (UBI, error) {
	idx, err := mtdIndex(m)
	if err != nil {
		return nil, err
	}
	n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(idx)
	if !ok {
		return nil, nil
	}
	return openUBI(n)
}

func (system) AttachUBI(m MTD) (UBI, error) {
	idx, err := mtdIndex(m)
	if err != nil {
		return nil, err
	}
	n, err := ubi.AttachMTD(idx, ubi.AttachOptions{})
	if err != nil {
		return nil, err
	}
	return openUBI(n)
}

// openUBI opens /dev/ubiN; on failure the UBI is a nil interface, not a
// nil *ubi.Device in one.
func openUBI(n int) (UBI, error) {
	d, err := ubi.OpenDevice(n)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (system) DetachUBI(u UBI) error {
	d, ok := u.(*ubi.Device)
	if !ok {
		return fmt.Errorf("flash: %v is not a UBI device of this system", u)
	}
	d.Close()
	return ubi.Detach(d.Num)
}
