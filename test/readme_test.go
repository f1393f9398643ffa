package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

// TestReadme runs the README's "Using it" section as written: its sh
// block through bash in a fresh folder, with its yaml block as
// bundle.yaml and the commands built from this tree on $PATH. Nothing is
// replaced: a README command that stops working fails here.
func TestReadme(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands and writes a loop device; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root for losetup (CI runs as root)")
	}
	for _, tool := range []string{"bash", "losetup", "mkfs.vfat", "mkfs.ext4", "truncate"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "## Using it"); i >= 0 {
		section = section[i:]
	} else {
		t.Fatal(`README.md has no "## Using it" section`)
	}
	script, spec := block(t, section, "sh"), block(t, section, "yaml")

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/lifeboat", "./cmd/lifeboat-bundle")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bundle.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: a command that fails stops the script, as it would a person.
	cmd := exec.Command("bash", "-e", "-x", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("README commands:\n%s", out.String())
	if err != nil {
		// Leave no loop device behind.
		exec.Command("losetup", "-j", filepath.Join(dir, "disk.img")).Run()
		if b, _ := exec.Command("losetup", "-n", "-O", "NAME", "-j", filepath.Join(dir, "disk.img")).Output(); len(b) > 0 {
			for _, d := range strings.Fields(string(b)) {
				exec.Command("losetup", "-d", d).Run()
			}
		}
		t.Fatalf("the README's commands fail: %v", err)
	}
	for _, want := range []string{"all checks passed", "installed in", "the device matches the bundle"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the README's commands did not say %q", want)
		}
	}
}

// block returns the first fenced block of language lang in s.
func block(t *testing.T, s, lang string) string {
	t.Helper()
	start := strings.Index(s, "```"+lang+"\n")
	if start < 0 {
		t.Fatalf("no ```%s block", lang)
	}
	s = s[start+len(lang)+4:]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatalf("unterminated ```%s block", lang)
	}
	return s[:end]
}
