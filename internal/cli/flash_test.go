package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/handlers/flash"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd/mtdtest"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// oneNAND is an flash.Flash with one simulated NAND device, never
// attached to UBI.
type oneNAND struct {
	name string
	f    *mtdtest.Flash
}

type nandDev struct{ *mtdtest.Flash }

func (nandDev) Close() error { return nil }

func (o oneNAND) OpenMTD(name string, write bool) (flash.MTD, error) {
	if name != o.name {
		return nil, fmt.Errorf("%w: %q", mtd.ErrNotFound, name)
	}
	return nandDev{o.f}, nil
}
func (oneNAND) AttachedUBI(flash.MTD) (flash.UBI, error) { return nil, nil }
func (oneNAND) AttachUBI(m flash.MTD) (flash.UBI, error) {
	return nil, fmt.Errorf("no UBI here")
}
func (oneNAND) DetachUBI(flash.UBI) error { return nil }

// TestFlashTarget plans, installs and verifies a bundle to a board
// profile's raw NAND target, with a bad block.
func TestFlashTarget(t *testing.T) {
	f := newFixture(t, 0)
	nand := mtdtest.NewNAND(16, 128<<10, 2048)
	nand.Bad[1] = true
	deps := Deps{Flash: oneNAND{"rootfs-nand", nand}}
	profile := fmt.Sprintf(`{"name": %q, "storage": {}, "targets": {"rootfs": {"mtd": "rootfs-nand", "max_bad": 2}}}`, installtest.Board)
	board := f.write(t, "board.json", []byte(profile))
	events := filepath.Join(f.dir, "events.jsonl")
	run := func(args ...string) result {
		var out, errb bytes.Buffer
		args = append([]string{args[0], "--keys", f.key.Dir, "--board", board, "--on-device", "--progress", "none"}, args[1:]...)
		code := MainWith(context.Background(), args, nil, &out, &errb, deps)
		return result{code, out.String(), errb.String()}
	}

	run("plan", "--events", events, f.path).check(t, 0, "")
	b, _ := os.ReadFile(events)
	var plan struct {
		Steps []install.PlanStep `json:"steps"`
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"event":"plan"`) {
			json.Unmarshal([]byte(line), &plan)
		}
	}
	if len(plan.Steps) != 1 || plan.Steps[0].Kind != "mtd" || plan.Steps[0].EraseSize != 128<<10 || plan.Steps[0].Via != "board profile" {
		t.Errorf("plan event steps = %+v, want one mtd step via the board profile", plan.Steps)
	}
	if nand.Programs != 0 {
		t.Error("plan wrote to the flash")
	}

	run("install", f.path).check(t, 0, "")
	got := append(bytes.Clone(nand.Bytes()[:128<<10]), nand.Bytes()[256<<10:]...)
	if !bytes.Equal(got[:len(f.data)], f.data) {
		t.Error("the NAND's good blocks do not hold the image")
	}
	r := run("verify", f.path)
	r.check(t, 0, "")
	if !strings.Contains(r.stdout, "matches the bundle") {
		t.Errorf("verify: %q", r.stdout)
	}

	// Too many bad blocks for the budget: refused before any write.
	nand.Bad[2], nand.Bad[3] = true, true
	programs := nand.Programs
	run("install", f.path).check(t, exitcode.TooSmall, "too many bad blocks")
	if nand.Programs != programs {
		t.Error("a refused install wrote to the flash")
	}
}
