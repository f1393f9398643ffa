package rescue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/partitions"
	"github.com/lifeboat-updater/lifeboat/pid1/pid1test"
)

func preset(t *testing.T, name string) boards.Recovery {
	t.Helper()
	r, err := boards.Recovery{Preset: name}.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEnvReason(t *testing.T) {
	for _, tc := range []struct {
		preset string
		vars   map[string]string
		want   string // "" for no reason
	}{
		{"grub", map[string]string{"boot_count": "4", "boot_limit": "3"}, "boot counter exceeded (boot_count=4 > boot_limit=3)"},
		{"grub", map[string]string{"boot_count": "3", "boot_limit": "3"}, ""},
		{"grub", map[string]string{"boot_count": "4"}, "boot counter exceeded (boot_count=4 > limit=3)"},
		{"grub", map[string]string{"boot_count": "9", "boot_limit": "x"}, "boot counter exceeded (boot_count=9 > limit=3)"},
		{"grub", map[string]string{"boot_count": "x"}, ""},
		{"grub", map[string]string{}, ""},
		{"grub", map[string]string{"lifeboat_transaction": "1", "boot_count": "0"}, "unfinished install (lifeboat_transaction=1)"},
		{"grub", map[string]string{"lifeboat_transaction": "0"}, ""},
		{"swupdate", map[string]string{"recovery_status": "in_progress"}, "unfinished install (recovery_status=in_progress)"},
		{"swupdate", map[string]string{"recovery_status": "failed", "bootcount": "5", "bootlimit": "4"}, "boot counter exceeded (bootcount=5 > bootlimit=4)"},
		{"mender", map[string]string{"upgrade_available": "0", "bootcount": "1", "bootlimit": "1"}, ""},
		{"mender", map[string]string{"upgrade_available": "1"}, "unfinished install (upgrade_available=1)"},
		{"rauc", map[string]string{"BOOT_A_LEFT": "0"}, "boot counter exceeded (BOOT_A_LEFT=0: no boots left)"},
		{"rauc", map[string]string{"BOOT_A_LEFT": "1"}, ""},
	} {
		got, ok := EnvReason(preset(t, tc.preset), tc.vars)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("EnvReason(%s, %v) = %q, %v; want %q", tc.preset, tc.vars, got, ok, tc.want)
		}
	}
}

func TestFinishChanges(t *testing.T) {
	type change struct {
		Set   map[string]string
		Unset []string
	}
	for _, tc := range []struct {
		preset string
		sv     int64
		begin  map[string]string
		want   change
	}{
		{"grub", -1, map[string]string{"lifeboat_transaction": "1"},
			change{map[string]string{"boot_count": "0"}, []string{"lifeboat_transaction"}}},
		{"swupdate", -1, map[string]string{"recovery_status": "in_progress"},
			change{map[string]string{"bootcount": "0", "ustate": "1"}, []string{"recovery_status"}}},
		{"mender", -1, map[string]string{"upgrade_available": "1", "bootcount": "6"},
			change{map[string]string{"bootcount": "0", "upgrade_available": "0"}, nil}},
		{"rauc", -1, map[string]string{"lifeboat_transaction": "1"},
			change{map[string]string{"BOOT_A_LEFT": "3", "BOOT_ORDER": "A"}, []string{"lifeboat_transaction"}}},
	} {
		r := preset(t, tc.preset)
		if diff := cmp.Diff(tc.begin, BeginChanges(r, map[string]string{"bootlimit": "5"})); diff != "" {
			t.Errorf("BeginChanges(%s) (-want +got):\n%s", tc.preset, diff)
		}
		set, unset := FinishChanges(r, tc.sv)
		if diff := cmp.Diff(tc.want, change{set, unset}); diff != "" {
			t.Errorf("FinishChanges(%s) (-want +got):\n%s", tc.preset, diff)
		}
	}
	r, err := boards.Recovery{Preset: "grub", SecurityVersion: "lifeboat_security_version"}.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if set, _ := FinishChanges(r, 7); set["lifeboat_security_version"] != "7" {
		t.Errorf("FinishChanges with a security version = %v, want lifeboat_security_version=7", set)
	}
}

func TestCmdlineDecision(t *testing.T) {
	for _, tc := range []struct{ in, action string }{
		{"factory-reset", ActionFactoryReset},
		{"factory_reset", ActionFactoryReset},
		{"boot-count", ActionReinstall},
		{"altbootcmd", ActionReinstall},
	} {
		if got := CmdlineDecision(tc.in); got.Action != tc.action || got.Source != FromCmdline {
			t.Errorf("CmdlineDecision(%q) = %+v, want action %q", tc.in, got, tc.action)
		}
	}
}

// fakeKey is held for a number of polls of its level.
type fakeKey struct {
	heldFor time.Duration
	start   time.Time
	err     error
}

func (k *fakeKey) level() (bool, error) {
	if k.err != nil {
		return false, k.err
	}
	return time.Since(k.start) < k.heldFor, nil
}

func TestMeasureHold(t *testing.T) {
	const long = 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		heldFor time.Duration
		err     error
		want    Hold
	}{
		{name: "not held", heldFor: 0, want: Hold{}},
		{name: "short", heldFor: 100 * time.Millisecond, want: Hold{Held: true}},
		{name: "long", heldFor: time.Hour, want: Hold{Held: true, Long: true}},
		{name: "error", err: errors.New("EIO")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fk := &fakeKey{heldFor: tc.heldFor, start: time.Now(), err: tc.err}
			k := &polledKey{read: fk.level, every: 5 * time.Millisecond}
			start := time.Now()
			got, err := MeasureHold(context.Background(), k, long, time.Now, nil)
			if (err != nil) != (tc.err != nil) {
				t.Fatalf("MeasureHold = %v, want error %v", err, tc.err)
			}
			if got.Held != tc.want.Held || got.Long != tc.want.Long {
				t.Errorf("MeasureHold = %+v, want %+v", got, tc.want)
			}
			if tc.want.Long && time.Since(start) > long+200*time.Millisecond {
				t.Errorf("a long hold took %v to report, want about %v: it must not wait for the release", time.Since(start), long)
			}
			if tc.want.Held && !tc.want.Long && (got.Duration < 50*time.Millisecond || got.Duration >= long) {
				t.Errorf("short hold measured %v", got.Duration)
			}
		})
	}
}

func TestButtonDecision(t *testing.T) {
	if d := ButtonDecision(Hold{Held: true, Duration: time.Second, Device: "/dev/input/event0"}); d.Action != ActionReinstall || !strings.Contains(d.Reason, "let go 1.0s later (short)") {
		t.Errorf("short hold: %+v", d)
	}
	if d := ButtonDecision(Hold{Held: true, Long: true, Duration: 5 * time.Second}); d.Action != ActionFactoryReset {
		t.Errorf("long hold: %+v", d)
	}
}

// recoveryFixture is the flow fixture with a GRUB environment block at the
// start of the "data" partition and the grub recovery preset.
func recoveryFixture(t *testing.T, extra string) *flowFixture {
	t.Helper()
	f := newFlowFixture(t, flowBoard)
	f.profile = []byte(fmt.Sprintf(`{"name": %q, "storage": {"disk": {"paths": [%q]}},
		"bootenv": {"env": {"type": "grub", "device": "disk", "partition": "data"}},
		"recovery": {"preset": "grub", "security_version": "lifeboat_security_version", "state": ["data"]%s}}`, flowBoard, f.disk, extra))
	// Install once, so the disk has its table.
	in := f.installer(&bytes.Buffer{})
	in.Install = nil
	in.StateDir = t.TempDir()
	in.Button = func(context.Context, *boards.Button, func(string, ...any)) (Hold, error) { return Hold{}, nil }
	if err := in.Flow(context.Background(), f.env(&pid1test.Log{}, "lifeboat.url=file:"+f.bundle)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *flowFixture) envStore(t *testing.T) bootenv.Store {
	t.Helper()
	p, err := partOf(f.disk, "data")
	if err != nil {
		t.Fatal(err)
	}
	return bootenv.NewGRUBStoreAt(f.disk, p.Start)
}

// TestFlowBootCounter: the environment says the boot counter ran over; the
// rescue says so first, marks the transaction before it writes, and then
// resets the counter, clears the marker and records the security version.
func TestFlowBootCounter(t *testing.T) {
	f := recoveryFixture(t, "")
	st := f.envStore(t)
	env := bootenv.NewGRUBEnv()
	for k, v := range map[string]string{"boot_count": "4", "boot_limit": "3", "keep": "me"} {
		env.Set(k, v)
	}
	if err := st.Save(env); err != nil {
		t.Fatal(err)
	}
	in := f.installer(&bytes.Buffer{})
	in.Install = nil
	in.StateDir = t.TempDir()
	var during map[string]string
	in.Sync = func() { // runs after the install, before the finish
		e, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		during = e.Vars()
	}
	log := &pid1test.Log{}
	if err := in.Flow(context.Background(), f.env(log, "lifeboat.url=file:"+f.bundle)); err != nil {
		t.Fatalf("Flow = %v; log:\n%s", err, log)
	}
	first := strings.SplitN(log.String(), "\n", 2)[0]
	if want := MsgReason + "boot counter exceeded (boot_count=4 > boot_limit=3); action: reinstall"; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	if during["lifeboat_transaction"] != "1" {
		t.Errorf("during the install: %v, want the marker lifeboat_transaction=1", during)
	}
	e, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"boot_count": "0", "boot_limit": "3", "keep": "me", "lifeboat_security_version": "3"}
	if diff := cmp.Diff(want, e.Vars()); diff != "" {
		t.Errorf("environment after the install (-want +got):\n%s\nlog:\n%s", diff, log)
	}
	for _, s := range []string{MsgMarkerSet, MsgFinished} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, log)
		}
	}

	// The security version is kept in the environment: a bundle below it
	// is refused before anything is written.
	env2, _ := st.Load()
	env2.Set("lifeboat_security_version", "9")
	env2.Set("boot_count", "0")
	if err := st.Save(env2); err != nil {
		t.Fatal(err)
	}
	in2 := f.installer(&bytes.Buffer{})
	in2.Install = nil
	in2.StateDir = t.TempDir()
	log2 := &pid1test.Log{}
	err = in2.Flow(context.Background(), f.env(log2, "lifeboat.url=file:"+f.bundle))
	var fe *FlowError
	if !errors.As(err, &fe) || fe.Stage != "plan" || !strings.Contains(err.Error(), "rollback") {
		t.Errorf("Flow with a higher security version in the environment = %v, want a rollback refused at plan", err)
	}
	if e, _ := st.Load(); e.Vars()["lifeboat_transaction"] != "" {
		t.Errorf("a refused bundle set the marker: %v", e.Vars())
	}
}

// TestFlowFactoryReset wipes the state partition, and nothing else, on
// lifeboat.reason=factory-reset and on a long button hold.
func TestFlowFactoryReset(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string
		hold    *Hold
	}{
		{name: "cmdline", cmdline: "lifeboat.reason=factory-reset"},
		{name: "long hold", hold: &Hold{Held: true, Long: true, Duration: 5 * time.Second, Device: "fake"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := recoveryFixture(t, `, "button": {"key": "KEY_R"}`)
			p, err := partOf(f.disk, "data")
			if err != nil {
				t.Fatal(err)
			}
			fill(t, f.disk, p.Start, p.Size)
			before, err := os.ReadFile(f.disk)
			if err != nil {
				t.Fatal(err)
			}
			in := f.installer(&bytes.Buffer{})
			in.Button = func(context.Context, *boards.Button, func(string, ...any)) (Hold, error) {
				if tc.hold == nil {
					return Hold{}, nil
				}
				return *tc.hold, nil
			}
			log := &pid1test.Log{}
			if err := in.Flow(context.Background(), f.env(log, tc.cmdline)); err != nil {
				t.Fatalf("Flow = %v; log:\n%s", err, log)
			}
			if first := strings.SplitN(log.String(), "\n", 2)[0]; !strings.HasSuffix(first, "; action: factory reset") {
				t.Errorf("first line %q, want a factory reset", first)
			}
			if !strings.Contains(log.String(), MsgFactoryReset+"1 state partition(s)") {
				t.Errorf("log lacks the factory reset summary:\n%s", log)
			}
			after, err := os.ReadFile(f.disk)
			if err != nil {
				t.Fatal(err)
			}
			const mib = 1 << 20
			if !bytes.Equal(after[:p.Start], before[:p.Start]) || !bytes.Equal(after[p.Start+p.Size:], before[p.Start+p.Size:]) {
				t.Errorf("a factory reset changed bytes outside the state partition")
			}
			zero := make([]byte, mib)
			if !bytes.Equal(after[p.Start:p.Start+mib], zero) || !bytes.Equal(after[p.Start+p.Size-mib:p.Start+p.Size], zero) {
				t.Errorf("the state partition's first and last MiB are not zero")
			}
		})
	}
}

func fill(t *testing.T, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := bytes.Repeat([]byte("state "), int(n)/6+1)[:n]
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestFactoryResetNoState(t *testing.T) {
	_, _, err := FactoryReset(context.Background(), &boards.Profile{Name: "b"}, install.Config{})
	if !errors.Is(err, ErrNoState) {
		t.Errorf("FactoryReset without recovery.state = %v, want ErrNoState", err)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	os.WriteFile(disk, make([]byte, 1<<20), 0o644)
	p := &boards.Profile{Name: "b", Storage: map[string]boards.Storage{"disk": {Paths: []string{disk}}},
		Recovery: &boards.Recovery{State: []string{"data"}}}
	if _, _, err := FactoryReset(context.Background(), p, install.Config{}); !errors.Is(err, install.ErrTargetMissing) {
		t.Errorf("FactoryReset of a partition the disk lacks = %v, want install.ErrTargetMissing", err)
	}
}

// partOf finds partition name on the disk image at path.
func partOf(path, name string) (partitions.Partition, error) {
	l, err := partitions.ReadDevice(path)
	if err != nil {
		return partitions.Partition{}, err
	}
	p, ok := l.Find(name)
	if !ok {
		return partitions.Partition{}, fmt.Errorf("no partition %q on %s", name, path)
	}
	return p, nil
}
