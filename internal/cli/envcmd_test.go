package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEnvCommandGRUB changes a grubenv made by grub-editenv and reads it
// back with grub-editenv.
func TestEnvCommandGRUB(t *testing.T) {
	if _, err := exec.LookPath("grub-editenv"); err != nil {
		t.Skip("grub-editenv not installed (Debian grub-common)")
	}
	f := filepath.Join(t.TempDir(), "grubenv")
	runTool(t, "grub-editenv", f, "set", "keep=me", "boot_count=3")

	lifeboat(nil, "env", "set", "--grub", f, "boot_count=0", "lifeboat_transaction=1", "note=two words").check(t, 0, "")
	lifeboat(nil, "env", "unset", "--grub", f, "lifeboat_transaction").check(t, 0, "")
	r := lifeboat(nil, "env", "print", "--grub", f)
	r.check(t, 0, "")
	if diff := cmp.Diff("boot_count=0\nkeep=me\nnote=two words\n", r.stdout); diff != "" {
		t.Errorf("env print (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("boot_count=0\nkeep=me\nnote=two words\n", sortLines(runTool(t, "grub-editenv", f, "list"))); diff != "" {
		t.Errorf("grub-editenv list (-want +got):\n%s", diff)
	}
	r = lifeboat(nil, "env", "print", "-n", "--grub", f, "keep")
	r.check(t, 0, "")
	if r.stdout != "me\n" {
		t.Errorf("env print -n keep = %q, want \"me\\n\"", r.stdout)
	}
	lifeboat(nil, "env", "set", "--grub", f, "boot_limit", "5").check(t, 0, "")
	if r := lifeboat(nil, "env", "print", "--grub", f, "boot_limit"); r.stdout != "boot_limit=5\n" {
		t.Errorf("env set NAME VALUE: print = %q", r.stdout)
	}
	lifeboat(nil, "env", "print", "--grub", f, "missing", "keep").check(t, 1, "missing not set")
}

// TestEnvCommandBoard reaches the GRUB block of the qemu-x86_64 profile:
// inside the "grubenv" partition of a disk image, at its offset.
func TestEnvCommandBoard(t *testing.T) {
	for _, tool := range []string{"sgdisk", "grub-editenv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian gdisk, grub-common)", tool)
		}
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 4<<20); err != nil {
		t.Fatal(err)
	}
	runTool(t, "sgdisk", "--new=1:2048:4095", "--change-name=1:grubenv", disk)
	block := filepath.Join(dir, "block")
	runTool(t, "grub-editenv", block, "set", "boot_count=4", "boot_limit=3")
	b, err := os.ReadFile(block)
	if err != nil {
		t.Fatal(err)
	}
	const at = 2048*512 + 55296 // the partition, then the profile's offset
	fd, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fd.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	fd.Close()

	board := []string{"--board", "qemu-x86_64", "--storage", "disk=" + disk}
	r := lifeboat(nil, append([]string{"env", "print"}, board...)...)
	r.check(t, 0, "")
	if diff := cmp.Diff("boot_count=4\nboot_limit=3\n", r.stdout); diff != "" {
		t.Errorf("env print (-want +got):\n%s", diff)
	}
	lifeboat(nil, append([]string{"env", "set", "boot_count=0"}, board...)...).check(t, 0, "")
	// The same block, read as a GRUB file at an offset.
	r = lifeboat(nil, "env", "print", "--grub", disk, "--offset", "1103872", "boot_count")
	r.check(t, 0, "")
	if r.stdout != "boot_count=0\n" {
		t.Errorf("after set: %q, want boot_count=0", r.stdout)
	}
	lifeboat(nil, append([]string{"env", "print", "--bootenv", "nope"}, board...)...).check(t, 2, `no bootenv "nope"`)
	lifeboat(nil, "env", "print", "--board", "qemu-x86_64", "--storage", "disk="+filepath.Join(dir, "gone")).check(t, 9, "")
}

// TestEnvCommandUBoot: a blank U-Boot environment is refused until set
// --create makes one; fw_printenv reads the result.
func TestEnvCommandUBoot(t *testing.T) {
	if _, err := exec.LookPath("fw_printenv"); err != nil {
		t.Skip("fw_printenv not installed (Debian libubootenv-tool)")
	}
	dir := t.TempDir()
	env, cfg := filepath.Join(dir, "uboot.env"), filepath.Join(dir, "fw_env.config")
	os.WriteFile(env, make([]byte, 0x4000), 0o644)
	os.WriteFile(cfg, []byte(env+" 0x0 0x4000\n"), 0o644)

	lifeboat(nil, "env", "print", "--config", cfg).check(t, 5, "no copy with a valid CRC")
	lifeboat(nil, "env", "set", "--config", cfg, "bootcount=0").check(t, 5, "--create")
	lifeboat(nil, "env", "set", "--create", "--config", cfg, "bootcount=0", "bootlimit=3", "upgrade_available=1").check(t, 0, "")
	lifeboat(nil, "env", "unset", "--config", cfg, "upgrade_available").check(t, 0, "")
	got := runTool(t, "fw_printenv", "-c", cfg)
	if diff := cmp.Diff("bootcount=0\nbootlimit=3\n", sortLines(got)); diff != "" {
		t.Errorf("fw_printenv (-want +got):\n%s", diff)
	}
}

func TestEnvCommandUsage(t *testing.T) {
	f := filepath.Join(t.TempDir(), "grubenv")
	for _, tc := range []struct {
		args   []string
		code   int
		reason string
	}{
		{[]string{"env"}, 2, "print, set or unset"},
		{[]string{"env", "show"}, 2, `env "show"`},
		{[]string{"env", "print", "--grub", f, "--config", f}, 2, "one of --board, --config and --grub"},
		{[]string{"env", "set", "--grub", f, "=x"}, 2, "want NAME=VALUE"},
		{[]string{"env", "set", "--grub", f}, 2, "needs NAME=VALUE"},
		{[]string{"env", "unset", "--grub", f}, 2, "needs a NAME"},
		{[]string{"env", "print", "--offset", "4"}, 2, "--offset goes with --grub"},
		{[]string{"env", "print", "--grub", f}, 9, "no such file"},
	} {
		lifeboat(nil, tc.args...).check(t, tc.code, tc.reason)
	}
}

func sortLines(s string) string {
	lines := splitLines(s)
	for i := 1; i < len(lines); i++ {
		for j := i; j > 0 && lines[j] < lines[j-1]; j-- {
			lines[j], lines[j-1] = lines[j-1], lines[j]
		}
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
