package cli

import (
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

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
