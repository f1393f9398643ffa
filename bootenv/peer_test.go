package bootenv

// Cross-tests with the reference tools: libubootenv's fw_printenv/fw_setenv
// (Debian libubootenv-tool), mkenvimage (u-boot-tools) and grub-editenv
// (grub-common). Variables are compared decoded, not as bytes: libubootenv
// may leave stray bytes after the variables inside the CRC'd area.

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var peerVars = map[string]string{
	"bootcmd":           "run distro_bootcmd; reset",
	"bootargs":          "console=ttyS0,115200 root=/dev/vda2 rw",
	"bootcount":         "3",
	"upgrade_available": "1",
	"eq":                "a=b=c",
	"spaces":            "  lead and trail  ",
}

func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (Debian package %s)", name, pkg)
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, stderr.String())
	}
	return stdout.String()
}

// printenv reads an env with fw_printenv; values hold no newline here.
func printenv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for line := range strings.Lines(runTool(t, "fw_printenv", "-c", cfg)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		m[k] = v
	}
	return m
}

// peerEnv is a U-Boot env in a file that both Lifeboat and libubootenv see,
// through the same fw_env.config.
type peerEnv struct {
	path, cfg string
	store     *UBootStore
}

func newPeerEnv(t *testing.T, size int, redundant bool) *peerEnv {
	t.Helper()
	p := fileOf(t, 2*size, 0xFF) // blank flash
	cfg := fmt.Sprintf("%s 0x0 %#x\n", p, size)
	if redundant {
		cfg += fmt.Sprintf("%s %#x %#x\n", p, size, size)
	}
	cfgPath := filepath.Join(t.TempDir(), "fw_env.config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return &peerEnv{path: p, cfg: cfgPath, store: openFile(t, Config{FWEnvConfig: cfgPath})}
}

func TestPeerFWPrintenvReadsLifeboat(t *testing.T) {
	needTool(t, "fw_printenv", "libubootenv-tool")
	for _, redundant := range []bool{false, true} {
		t.Run(fmt.Sprintf("redundant=%v", redundant), func(t *testing.T) {
			pe := newPeerEnv(t, 0x2000, redundant)
			provision(t, pe.store, peerVars)
			want := maps.Clone(peerVars)
			for i := range 4 { // both copies, twice each
				want["round"] = fmt.Sprint(i)
				delete(want, "upgrade_available")
				if err := pe.store.Apply(map[string]string{"round": want["round"]}, []string{"upgrade_available"}); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, printenv(t, pe.cfg)); diff != "" {
					t.Fatalf("round %d: fw_printenv of Lifeboat's env (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestPeerFWPrintenvCounterWrap: Lifeboat's saves across the 255 -> 0 wrap
// are read as current by libubootenv too.
func TestPeerFWPrintenvCounterWrap(t *testing.T) {
	needTool(t, "fw_printenv", "libubootenv-tool")
	const size = 0x1000
	for _, img := range wrapImages(size) {
		pe := newPeerEnv(t, size, true)
		os.WriteFile(pe.path, img, 0o644)
		for _, gen := range []string{"0", "1", "2"} {
			if err := pe.store.Apply(map[string]string{"gen": gen}, nil); err != nil {
				t.Fatal(err)
			}
			if got := printenv(t, pe.cfg)["gen"]; got != gen {
				t.Errorf("fw_printenv gen = %q after Lifeboat wrote %q", got, gen)
			}
		}
	}
}

func TestPeerLifeboatReadsFWSetenv(t *testing.T) {
	needTool(t, "fw_setenv", "libubootenv-tool")
	for _, redundant := range []bool{false, true} {
		t.Run(fmt.Sprintf("redundant=%v", redundant), func(t *testing.T) {
			pe := newPeerEnv(t, 0x2000, redundant)
			// A blank env makes libubootenv fail until it is given defaults.
			defaults := filepath.Join(t.TempDir(), "defaults.txt")
			var b strings.Builder
			for _, k := range slices.Sorted(maps.Keys(peerVars)) {
				fmt.Fprintf(&b, "%s=%s\n", k, peerVars[k])
			}
			os.WriteFile(defaults, []byte(b.String()), 0o644)
			runTool(t, "fw_setenv", "-c", pe.cfg, "-f", defaults, "round", "init")
			want := maps.Clone(peerVars)
			want["round"] = "init"
			for i := range 4 {
				if i > 0 {
					want["round"] = fmt.Sprint(i)
					runTool(t, "fw_setenv", "-c", pe.cfg, "round", want["round"])
				}
				e := mustLoad(t, pe.store)
				if diff := cmp.Diff(want, e.Vars()); diff != "" {
					t.Fatalf("round %d: Lifeboat's view of fw_setenv's env (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(printenv(t, pe.cfg), e.Vars()); diff != "" {
					t.Fatalf("round %d: Lifeboat vs fw_printenv (-fw_printenv +lifeboat):\n%s", i, diff)
				}
			}
		})
	}
}

// TestPeerFWSetenvCounterWrap: fw_setenv's save across the wrap is current
// for Lifeboat (the fwup #214 case, with the reference writer).
func TestPeerFWSetenvCounterWrap(t *testing.T) {
	needTool(t, "fw_setenv", "libubootenv-tool")
	const size = 0x1000
	for _, img := range wrapImages(size) {
		pe := newPeerEnv(t, size, true)
		os.WriteFile(pe.path, img, 0o644)
		for _, gen := range []string{"0", "1", "2"} {
			runTool(t, "fw_setenv", "-c", pe.cfg, "gen", gen)
			e := mustLoad(t, pe.store)
			if got, _ := e.Get("gen"); got != gen || fmt.Sprint(e.Flag()) != gen {
				t.Errorf("Lifeboat reads gen %q flag %d after fw_setenv wrote %s", got, e.Flag(), gen)
			}
		}
	}
}

func TestPeerMkenvimage(t *testing.T) {
	needTool(t, "mkenvimage", "u-boot-tools")
	const size = 0x1000
	order := slices.Sorted(maps.Keys(peerVars))
	var in strings.Builder
	for _, k := range order {
		fmt.Fprintf(&in, "%s=%s\n", k, peerVars[k])
	}
	inPath := filepath.Join(t.TempDir(), "env.txt")
	os.WriteFile(inPath, []byte(in.String()), 0o644)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"single", nil},
		{"redundant", []string{"-r"}},
		{"single pad00", []string{"-p", "0"}},
		{"redundant pad00", []string{"-r", "-p", "0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "env.img")
			runTool(t, "mkenvimage", append(tt.args, "-s", fmt.Sprint(size), "-o", out, inPath)...)
			img, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			redundant := slices.Contains(tt.args, "-r")
			e, err := DecodeUBoot(img, redundant)
			if err != nil {
				t.Fatalf("DecodeUBoot(mkenvimage %v) = %v", tt.args, err)
			}
			if diff := cmp.Diff(peerVars, e.Vars()); diff != "" {
				t.Errorf("Vars() of mkenvimage's image (-want +got):\n%s", diff)
			}
			// Same variables in the same order and padding: the same bytes.
			again, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img, again) {
				t.Errorf("Encode(Decode(mkenvimage %v)) differs from mkenvimage's image", tt.args)
			}
			if slices.Contains(tt.args, "-p") {
				fresh, _ := NewUBootEnv(size, redundant)
				for _, k := range order {
					fresh.Set(k, peerVars[k])
				}
				if b, _ := fresh.Encode(); !bytes.Equal(img, b) {
					t.Errorf("a new env encoded differs from mkenvimage %v", tt.args)
				}
			}
		})
	}
}

// grubList is what grub-editenv list prints for e: its variables in block
// order.
func grubList(e *GRUBEnv) string {
	var b strings.Builder
	for _, n := range e.v.names {
		fmt.Fprintf(&b, "%s=%s\n", n, e.v.m[n])
	}
	return b.String()
}

func TestPeerGRUBEditenv(t *testing.T) {
	needTool(t, "grub-editenv", "grub-common")
	p := filepath.Join(t.TempDir(), "grubenv")
	runTool(t, "grub-editenv", p, "create")
	runTool(t, "grub-editenv", p, "set", "saved_entry=Debian GNU/Linux", `path=C:\boot\x`, "multi=one\ntwo", "empty=")
	s := NewGRUBStore(p)
	env, err := s.Load()
	if err != nil {
		t.Fatalf("Load() of grub-editenv's block = %v", err)
	}
	want := map[string]string{"saved_entry": "Debian GNU/Linux", "path": `C:\boot\x`, "multi": "one\ntwo", "empty": ""}
	if diff := cmp.Diff(want, env.Vars()); diff != "" {
		t.Errorf("Lifeboat's view of grub-editenv's block (-want +got):\n%s", diff)
	}
	if got, want := grubList(env.(*GRUBEnv)), runTool(t, "grub-editenv", p, "list"); got != want {
		t.Errorf("Lifeboat lists\n%q\ngrub-editenv lists\n%q", got, want)
	}

	// Lifeboat writes; grub-editenv reads the same and can still edit it.
	set := map[string]string{"next_entry": "rescue", "bs": `a\\b\`, "nl": "x\n\ny\n"}
	if err := s.Apply(set, []string{"empty"}); err != nil {
		t.Fatal(err)
	}
	env, _ = s.Load()
	if got, want := runTool(t, "grub-editenv", p, "list"), grubList(env.(*GRUBEnv)); got != want {
		t.Errorf("grub-editenv lists Lifeboat's block as\n%q\nwant\n%q", got, want)
	}
	runTool(t, "grub-editenv", p, "set", "after=1")
	runTool(t, "grub-editenv", p, "unset", "next_entry")
	env, err = s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := grubList(env.(*GRUBEnv)), runTool(t, "grub-editenv", p, "list"); got != want {
		t.Errorf("after grub-editenv edits: Lifeboat lists\n%q\ngrub-editenv lists\n%q", got, want)
	}
	if b, _ := os.ReadFile(p); len(b) != GRUBEnvSize {
		t.Errorf("grubenv is %d bytes, want %d", len(b), GRUBEnvSize)
	}
}

func TestPeerGRUBEditenvReadsNewBlock(t *testing.T) {
	needTool(t, "grub-editenv", "grub-common")
	p := filepath.Join(t.TempDir(), "grubenv")
	s := NewGRUBStore(p)
	env := s.New()
	env.Set("saved_entry", "0")
	env.Set("x", "back\\slash\nnewline")
	if err := s.Save(env); err != nil {
		t.Fatal(err)
	}
	if got, want := runTool(t, "grub-editenv", p, "list"), grubList(env.(*GRUBEnv)); got != want {
		t.Errorf("grub-editenv lists a new block as\n%q\nwant\n%q", got, want)
	}
}
