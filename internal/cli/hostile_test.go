package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/bundle/bundletest"
	"github.com/lifeboat-updater/lifeboat/exitcode"
)

// forge takes the fixture's bundle apart, lets edit change it, and
// re-signs it with the trusted key, as a compromised build pipeline
// would; it returns the new bundle's path.
func (f *fixture) forge(t *testing.T, name string, edit func(p *bundletest.Parts) error) (string, []byte) {
	t.Helper()
	p, err := bundletest.Split(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if err := edit(p); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(bundle.Ed25519Signer{Key: f.key.Priv}); err != nil {
		t.Fatal(err)
	}
	b := p.Bytes()
	return f.write(t, name, b), b
}

// TestZeroChunkForeignHash: chunk 2 of the image (random bytes) is marked
// "zero" in a re-signed index, its hash still that of its real bytes.
// Before, install wrote zeros there and verify then said the device
// matched. Now the bundle is refused when it is opened: nothing is
// written, and verify does not call zeros a match.
func TestZeroChunkForeignHash(t *testing.T) {
	f := newFixture(t, 0)
	path, b := f.forge(t, "zero.bundle", func(p *bundletest.Parts) error { return p.MakeZero(2) })
	blank := bytes.Repeat([]byte{0xAA}, 2<<20)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin []byte
	}{
		{"install", f.args("install", path), nil},
		{"install from a stream", f.args("install", "-"), b},
		{"install --no-skip", f.args("install", "--no-skip", path), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(f.target, blank, 0o644)
			lifeboat(tc.stdin, tc.args...).check(t, exitcode.Corrupt, "marked zero")
			if got, _ := os.ReadFile(f.target); !bytes.Equal(got, blank) {
				t.Error("the target changed")
			}
		})
	}
	// The device holds the good image with zeros where chunk 2 goes: what
	// the forged bundle would have made. verify must not call it a match.
	dev := append(bytes.Clone(f.data), blank[len(f.data):]...)
	clear(dev[2*cs : 3*cs])
	os.WriteFile(f.target, dev, 0o644)
	lifeboat(nil, f.args("verify", path)...).check(t, exitcode.Corrupt, "marked zero")
	lifeboat(b, f.args("verify", "-")...).check(t, exitcode.Corrupt, "marked zero")
}

// TestHugeIndexClaimLowMemory runs lifeboat install and verify, in a
// child process with 256 MiB of writable memory, on a bundle of a few
// hundred bytes whose signed manifest and header claim a 1 GiB index.
// Before, lifeboat died with "out of memory", which for the rescue's PID 1
// is a kernel panic and a reboot loop; now it refuses the bundle in one
// line. The limit is RLIMIT_DATA, not RLIMIT_AS: the Go runtime reserves
// over 1 GiB of address space at start (bundle/lowmem_test.go).
func TestHugeIndexClaimLowMemory(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed: %v", err)
	}
	f := newFixture(t, 0)
	for _, claim := range []uint64{1 << 30 / 48 * 48, bundle.MaxIndexSize, 16 << 30 / 48 * 48} {
		path, b := f.forge(t, fmt.Sprintf("claim-%d.bundle", claim), func(p *bundletest.Parts) error { return p.ClaimIndex(claim) })
		for _, tc := range []struct {
			name  string
			args  []string
			stdin []byte
		}{
			{"install", f.args("install", path), nil},
			{"install from a stream", f.args("install", "-"), b},
			{"verify", f.args("verify", path), nil},
		} {
			t.Run(fmt.Sprintf("%d/%s", claim, tc.name), func(t *testing.T) {
				cmd := exec.Command("prlimit", fmt.Sprintf("--data=%d", 256<<20), "--", os.Args[0])
				cmd.Args = append(cmd.Args, tc.args...)
				cmd.Env = append(os.Environ(), "LIFEBOAT_TEST_MAIN=1", "GOMAXPROCS=2")
				cmd.Stdin = bytes.NewReader(tc.stdin)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				r := result{code, stdout.String(), stderr.String()}
				if code != exitcode.Corrupt && code != exitcode.Truncated {
					t.Fatalf("%v: %v, exit %d, want %d or %d\n%s", tc.args, err, code, exitcode.Corrupt, exitcode.Truncated, r.stderr)
				}
				r.check(t, code, "bundle")
			})
		}
	}
}

// TestHelpOnce asks every command for help: the usage once, on stdout,
// and exit 0.
func TestHelpOnce(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"-h"}, {"--help"}, {"help", "install"},
		{"install", "-h"}, {"install", "--help"}, {"install", "-help"},
		{"plan", "--help"}, {"verify", "--help"},
		{"install", "--keys", "x", "--help"},
		{"env", "--help"}, {"env", "print", "--help"}, {"env", "set", "--help"}, {"env", "unset", "-h"},
	} {
		r := lifeboat(nil, args...)
		if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "usage: ") != 1 {
			t.Errorf("lifeboat %v = %d, stdout %q, stderr %q; want 0 and the usage once", args, r.code, r.stdout, r.stderr)
		}
	}
}

// TestSecurityVersionFileNotAFile: a security version file that is a
// directory is a rollback refusal (exit 8), not an internal error.
func TestSecurityVersionFileNotAFile(t *testing.T) {
	f := newFixture(t, 0)
	dir := filepath.Join(f.dir, "sv")
	os.Mkdir(dir, 0o755)
	lifeboat(nil, f.args("install", "--security-version-file", dir, f.path)...).check(t, exitcode.Rollback, "security version file")
	if got, _ := os.ReadFile(f.target); !bytes.Equal(got, bytes.Repeat([]byte{0xAA}, len(got))) {
		t.Error("the target changed")
	}
}

// TestErrorsEscaped: what an error quotes from the command line or a
// bundle reaches stderr escaped, on one line.
func TestErrorsEscaped(t *testing.T) {
	f := newFixture(t, 0)
	r := lifeboat(nil, "\x1b[2K\rinstall\u202e")
	r.check(t, exitcode.Usage, `unknown command "\x1b[2K\rinstall\u202e"`)
	r = lifeboat(nil, f.args("install", "--target", "rootfs\r\nlifeboat: ok", f.path)...)
	if strings.ContainsAny(r.stderr, "\r\u202e\x1b") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr = %q", r.stderr)
	}
}
