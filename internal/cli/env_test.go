package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// TestEnvStep installs a bundle whose only step changes bootloader
// variables, into environments made by the real tools, and reads them back
// with the real tools.
func TestEnvStep(t *testing.T) {
	for _, tc := range []struct {
		name string
		tool string
		make func(t *testing.T, path string)
		list func(t *testing.T, path string) string
	}{
		{
			name: "grub", tool: "grub-editenv",
			make: func(t *testing.T, p string) { runTool(t, "grub-editenv", p, "set", "upgrade_available=1", "keep=me") },
			list: func(t *testing.T, p string) string { return runTool(t, "grub-editenv", p, "list") },
		},
		{
			name: "uboot", tool: "fw_setenv",
			make: func(t *testing.T, p string) {
				os.WriteFile(p, make([]byte, 0x4000), 0o644)
				cfg := p + ".config"
				os.WriteFile(cfg, []byte(p+" 0x0 0x4000\n"), 0o644)
				defaults := p + ".defaults"
				os.WriteFile(defaults, []byte("upgrade_available=1\nkeep=me\n"), 0o644)
				runTool(t, "fw_setenv", "-c", cfg, "-f", defaults)
			},
			list: func(t *testing.T, p string) string { return runTool(t, "fw_printenv", "-c", p+".config") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s not installed (Debian grub-common / libubootenv-tool)", tc.tool)
			}
			k := installtest.NewKey(t)
			dir := t.TempDir()
			env := filepath.Join(dir, "env")
			tc.make(t, env)
			m := installtest.Manifest(bundle.Step{Type: bundle.StepEnv, Target: "bootenv",
				Set: map[string]string{"bootcount": "0", "version": "2.0 final"}, Unset: []string{"upgrade_available"}})
			b := filepath.Join(dir, "b.lfb")
			os.WriteFile(b, installtest.Bundle(t, k, m, 0), 0o644)
			r := lifeboat(nil, "install", b, "--keys", k.Dir, "--board-name", installtest.Board, "--target", "bootenv="+env, "--progress", "plain")
			r.check(t, 0, "")
			got := tc.list(t, env)
			for _, want := range []string{"bootcount=0", "version=2.0 final", "keep=me"} {
				if !strings.Contains(got, want+"\n") {
					t.Errorf("%s lacks %q:\n%s", tc.tool, want, got)
				}
			}
			if strings.Contains(got, "upgrade_available") {
				t.Errorf("upgrade_available not removed:\n%s", got)
			}
		})
	}
}

// TestEnvMissing: a bundle naming an environment the device does not have
// fails before anything is written.
func TestEnvMissing(t *testing.T) {
	k := installtest.NewKey(t)
	dir := t.TempDir()
	m := installtest.Manifest(bundle.Step{Type: bundle.StepEnv, Target: "bootenv", Set: map[string]string{"a": "b"}})
	b := filepath.Join(dir, "b.lfb")
	os.WriteFile(b, installtest.Bundle(t, k, m, 0), 0o644)
	r := lifeboat(nil, "install", b, "--keys", k.Dir, "--board-name", installtest.Board, "--target", "bootenv="+filepath.Join(dir, "nope"))
	r.check(t, exitcode.NoTarget, "bootenv")
}

// TestEnvStepRefusedBeforeWrite: an env step that cannot succeed is
// refused by the plan, with the exit code of its class, before the image
// step ahead of it writes a byte; with create, a blank environment is
// made.
func TestEnvStepRefusedBeforeWrite(t *testing.T) {
	if _, err := exec.LookPath("fw_printenv"); err != nil {
		t.Skipf("fw_printenv not installed (Debian libubootenv-tool): %v", err)
	}
	k := installtest.NewKey(t)
	image := bytes.Repeat([]byte("image "), 10000)
	uboot := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "uboot.env")
		os.WriteFile(p, make([]byte, 0x4000), 0o644)
		cfg := p + ".config"
		os.WriteFile(cfg, []byte(p+" 0x0 0x4000\n"), 0o644)
		defaults := p + ".defaults"
		os.WriteFile(defaults, []byte("bootcmd=run distro\n"), 0o644)
		runTool(t, "fw_setenv", "-c", cfg, "-f", defaults)
		return p
	}
	grub := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "grubenv")
		runTool(t, "grub-editenv", p, "create")
		return p
	}
	blank := func(t *testing.T, dir string) string {
		p := filepath.Join(dir, "uboot.env")
		os.WriteFile(p, bytes.Repeat([]byte{0xFF}, 0x4000), 0o644)
		return p
	}
	for _, tc := range []struct {
		name   string
		env    func(*testing.T, string) string
		step   bundle.Step
		code   int
		reason string
	}{
		{"value larger than the environment", uboot, bundle.Step{Set: map[string]string{"big": strings.Repeat("x", 0x4000)}}, exitcode.TooSmall, "too full"},
		{"no valid copy", blank, bundle.Step{Set: map[string]string{"a": "1"}}, exitcode.NoTarget, "no valid copy"},
		{"GRUB value too long for the block", grub, bundle.Step{Set: map[string]string{"note": strings.Repeat("x", 1000)}}, exitcode.TooSmall, "too full"},
		{"create on blank", blank, bundle.Step{Set: map[string]string{"bootcount": "0"}, Create: true}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			env := tc.env(t, dir)
			before, _ := os.ReadFile(env)
			target := installtest.File(t, dir, "rootfs.img", 1<<20, 0x5A)
			step := tc.step
			step.Type, step.Target = bundle.StepEnv, "bootenv"
			m := installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"}, step)
			b := filepath.Join(dir, "b.lfb")
			os.WriteFile(b, installtest.Bundle(t, k, m, 0, installtest.Image{Name: "rootfs", Data: image}), 0o644)
			r := lifeboat(nil, "install", b, "--keys", k.Dir, "--board-name", installtest.Board,
				"--target", "rootfs="+target, "--target", "bootenv="+env, "--progress", "none")
			r.check(t, tc.code, tc.reason)
			got, _ := os.ReadFile(target)
			if tc.code != 0 {
				if !bytes.Equal(got, bytes.Repeat([]byte{0x5A}, 1<<20)) {
					t.Errorf("the image step ahead of a refused env step wrote its target")
				}
				if after, _ := os.ReadFile(env); !bytes.Equal(after, before) {
					t.Errorf("a refused env step changed the environment")
				}
				return
			}
			if !bytes.Equal(got[:len(image)], image) {
				t.Errorf("the image was not written")
			}
			os.WriteFile(env+".config", []byte(env+" 0x0 0x4000\n"), 0o644)
			if out := runTool(t, "fw_printenv", "-c", env+".config"); !strings.Contains(out, "bootcount=0\n") {
				t.Errorf("fw_printenv after create:\n%s", out)
			}
		})
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
