package flash

import (
	"errors"
	"testing"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd/mtdtest"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi/ubitest"
)

// simMTD is an MTD device that was not opened from a device node.
type simMTD struct{ *mtdtest.Flash }

func (simMTD) Close() error { return nil }

type simUBI struct{ *ubitest.Device }

func (simUBI) Close() error { return nil }

// TestSystemRefusesForeignDevices: System finds UBI by the /dev/mtdN an
// MTD device was opened as, and detaches only its own UBI devices; it
// says so, without touching the system, for anything else.
func TestSystemRefusesForeignDevices(t *testing.T) {
	m := simMTD{mtdtest.NewNAND(4, 16<<10, 512)}
	if u, err := System.AttachedUBI(m); u != nil || !errors.Is(err, mtd.ErrNotFound) {
		t.Errorf("AttachedUBI(simulated) = %v, %v, want nil, %v", u, err, mtd.ErrNotFound)
	}
	if u, err := System.AttachUBI(m); u != nil || !errors.Is(err, mtd.ErrNotFound) {
		t.Errorf("AttachUBI(simulated) = %v, %v, want nil, %v", u, err, mtd.ErrNotFound)
	}
	if err := System.DetachUBI(simUBI{ubitest.New(4, 16<<10)}); err == nil {
		t.Error("DetachUBI(simulated) = nil, want an error")
	}
}

func TestSystemOpenMTDMissing(t *testing.T) {
	if d, err := System.OpenMTD("/nonexistent/mtd9", false); d != nil || !errors.Is(err, mtd.ErrNotFound) {
		t.Errorf("OpenMTD(missing) = %v, %v, want nil, %v", d, err, mtd.ErrNotFound)
	}
}
