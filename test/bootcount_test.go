package test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/demo"
	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/internal/vm"
	"github.com/lifeboat-updater/lifeboat/rescue"
)

// TestGRUBPresetMatchesDemo: the variables the demo device's GRUB script
// and production use are the ones the board profile's recovery preset
// names, so the rescue reads and resets what GRUB counts.
func TestGRUBPresetMatchesDemo(t *testing.T) {
	p, err := boards.Builtin(demo.Board)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Recovery.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	got := []string{r.Marker, r.Counter, r.LimitVar, r.SecurityVersion}
	want := []string{demo.GRUBMarker, demo.GRUBCounter, demo.GRUBLimit, demo.GRUBSecurityVersion}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recovery variables of %s (-demo +profile):\n%s", demo.Board, diff)
	}
}

// lifeboatEnv runs `lifeboat env ARGS` on the host against the board's
// disk image, as a person would, and returns its output.
func lifeboatEnv(t *testing.T, disk string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"env"}, args...)
	all = append(all, "--board", demo.Board, "--storage", "disk="+disk)
	if code := cli.Main(context.Background(), all, nil, &out, &errb); code != 0 {
		t.Fatalf("lifeboat %s: exit %d: %s", strings.Join(all, " "), code, errb.String())
	}
	return out.String()
}

// envVars reads the board's GRUB environment on the host.
func envVars(t *testing.T, disk string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(lifeboatEnv(t, disk, "print")), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// updateBundle makes and signs a bundle that installs the prepared
// production system's boot and root partitions only, as an update does:
// the bootloader, its environment and the rescue stay as they are.
func updateBundle(t *testing.T, p *demo.Prepared, dir string) string {
	t.Helper()
	a := p.Artifacts
	spec := fmt.Sprintf(`product: %s
version: "%s"
security_version: %d
compatible: [%s]
description: the production system only
steps:
  - {type: image, target: rootfs, file: %s, verify: true}
  - {type: image, target: boot, file: %s, verify: true}
`, demo.Product, a.Version, a.SecurityVersion, demo.Board, a.Rootfs, a.Boot)
	specPath := filepath.Join(dir, "update.yaml")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "www", "update.lfb")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := demo.CreateBundle(context.Background(), specPath, out, p.Key.Signer()); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBootCount is the boot-count fallback end to end, with GRUB as the
// bootloader and a power cut at the worst moment:
//
//  1. the board's production system fails every boot (demo FailBoot: it
//     reboots before it marks itself good); GRUB counts each boot in
//     boot_count in its environment before it starts production;
//  2. past boot_limit, GRUB boots the rescue, which says "boot counter
//     exceeded", sets the transaction marker, and reinstalls a good
//     production system from its source (HTTP, served here);
//  3. the power is cut after the install and before the rescue's
//     environment update (lifeboat.hold=finish, given once through
//     GRUB's lifeboat_args): the marker is still set;
//  4. at power-on GRUB sees the marker and boots the rescue again, which
//     says "unfinished install", finds everything written (skips it all),
//     clears the marker, resets the counter and reboots;
//  5. production boots and marks itself good; the disk matches the bundle.
func TestBootCount(t *testing.T) {
	t.Parallel()
	p := prepared(t)
	ctx := context.Background()
	dir := t.TempDir()
	start := time.Now()
	bundlePath := updateBundle(t, p, dir)
	srv := serve(t, filepath.Dir(bundlePath))
	url := srv.GuestURL(filepath.Base(bundlePath))

	// The failing device: the same layout, GRUB and rescue, a production
	// system that never comes up, and a boot limit of 1.
	a, err := demo.Build(ctx, demo.Options{
		KernelPath: p.Kernel.Vmlinuz, ModulesDir: p.Kernel.Modules,
		RescueKernel: p.Kernel.Vmlinuz, RescueInitramfs: p.Rescue.Path,
		OutDir: filepath.Join(dir, "failing"), Version: p.Artifacts.Version,
		SecurityVersion: p.Artifacts.SecurityVersion, FailBoot: true,
		InitBinary:    p.Artifacts.InitBinary,
		RescueCmdline: "console=ttyS0 lifeboat.url=" + url + " lifeboat.events=console",
		GRUBEnv: map[string]string{
			demo.GRUBCounter: "0", demo.GRUBLimit: "1",
			demo.GRUBSecurityVersion: fmt.Sprint(p.Artifacts.SecurityVersion),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	if err := demo.AssembleDisk(ctx, a, disk, demo.DefaultDiskSize); err != nil {
		t.Fatal(err)
	}
	lifeboatEnv(t, disk, "set", demo.GRUBRescueArgs+"=lifeboat.hold=finish")
	t.Logf("MEASURE boot count: update bundle, failing device: %v", time.Since(start).Round(100*time.Millisecond))

	power := func() (*vm.VM, *demo.Timeline) {
		o := demo.DeviceVM(disk)
		o.AllowReboot = true
		o.NICs = []string{"user,model=virtio-net-pci"}
		tl := demo.NewTimeline(nil)
		o.Console = tl
		v := vm.StartT(t, o)
		tl.Restart()
		return v, tl
	}

	// 1 and 2: two failed boots, then the rescue.
	v, tl := power()
	for i := 1; i <= 2; i++ {
		expect(t, v, demo.MsgFailing, 2*time.Minute)
	}
	expect(t, v, demo.MarkReason+"boot counter exceeded (boot_count=2 > boot_limit=1); action: reinstall", 2*time.Minute)
	expect(t, v, "lifeboat: bootenv grubenv: "+rescue.MsgMarkerSet, time.Minute)
	expect(t, v, demo.MarkInstalled, 3*time.Minute)
	// 3: the power cut.
	expect(t, v, rescue.MsgHold, 30*time.Second)
	v.Kill()
	failures := 0
	for _, l := range tl.Lines() {
		if strings.Contains(l.Text, demo.MsgFailing) {
			failures++
		}
	}
	reason, _ := tl.First(demo.MarkReason)
	installed, _ := tl.First(demo.MarkInstalled)
	t.Logf("MEASURE boot count: %d failed boots, rescue's reason at %v, installed at %v", failures, reason.Round(10*time.Millisecond), installed.Round(10*time.Millisecond))
	if failures != 2 {
		t.Errorf("%d failed production boots before the rescue, want 2 (boot_limit 1)", failures)
	}
	vars := envVars(t, disk)
	if vars[demo.GRUBMarker] != "1" || vars[demo.GRUBCounter] != "2" {
		t.Errorf("after the power cut: %v, want the marker set and the counter at 2", vars)
	}
	if _, ok := vars[demo.GRUBRescueArgs]; ok {
		t.Errorf("GRUB kept %s after using it: %v", demo.GRUBRescueArgs, vars)
	}

	// 4 and 5: power on again.
	v, tl = power()
	expect(t, v, demo.MarkReason+"unfinished install ("+demo.GRUBMarker+"=1); action: reinstall", 2*time.Minute)
	expect(t, v, demo.MarkInstalled, 3*time.Minute)
	expect(t, v, "lifeboat: bootenv grubenv: "+rescue.MsgFinished, 30*time.Second)
	expect(t, v, demo.MarkRebooting, 30*time.Second)
	expect(t, v, demo.Banner(p.Artifacts.Version), 2*time.Minute)
	expect(t, v, demo.MsgBootOK, time.Minute)
	if err := v.WaitTimeout(time.Minute); err != nil {
		t.Errorf("production did not power off: %v", err)
	}
	var summary string
	for _, l := range tl.Lines() {
		if i := strings.Index(l.Text, demo.MarkInstalled); i >= 0 {
			summary = l.Text[i:]
		}
	}
	ok, _ := tl.First(demo.MsgBootOK)
	t.Logf("MEASURE boot count: after the power cut, production boot ok at %v; %s", ok.Round(10*time.Millisecond), summary)
	if !strings.Contains(summary, "wrote 0 chunks") {
		t.Errorf("the second rescue boot wrote again: %q; want everything skipped", summary)
	}
	var events []string
	for _, e := range tl.Events() {
		if k := e.Kind(); k != "progress" {
			events = append(events, k)
		}
	}
	if len(events) == 0 || events[0] != "reason" {
		t.Errorf("events %v, want the reason first", events)
	}

	want := map[string]string{demo.GRUBCounter: "0", demo.GRUBLimit: "1", demo.GRUBSecurityVersion: fmt.Sprint(p.Artifacts.SecurityVersion)}
	if got := envVars(t, disk); !maps.Equal(got, want) {
		t.Errorf("environment at the end: %v, want %v", got, want)
	}
	verifyOnBoard(t, bundlePath, p.Key.PubPath(), disk)
	t.Logf("MEASURE boot count: whole test %v", time.Since(start).Round(100*time.Millisecond))
}

// verifyOnBoard runs `lifeboat verify` on the host with the board's own
// profile, its disk named as the image (--target disk=IMAGE): an update
// bundle names partitions of the disk's table, which only the profile's
// storage leads to.
func verifyOnBoard(t *testing.T, bundlePath, pub, disk string) {
	t.Helper()
	var out bytes.Buffer
	args := []string{"verify", bundlePath, "--keys", pub, "--board", demo.Board, "--target", "disk=" + disk, "--progress", "none"}
	if code := cli.Main(context.Background(), args, nil, &out, &out); code != 0 {
		t.Fatalf("lifeboat verify: exit %d:\n%s", code, out.String())
	}
	t.Logf("%s", strings.TrimSpace(out.String()))
}
