package bundletool

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/exitcode"
)

func runTool(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const testSpec = `product: demo
version: 1.0.0
security_version: 2
compatible: [qemu-x86_64]
chunk_size: 64KiB
images:
  boot: boot.img
steps:
  - type: partition
    target: disk
    partitions:
      - {name: boot, type: linux, size: 1MiB}
      - {name: rootfs, type: linux}
  - {type: image, image: boot, target: boot}
  - {type: image, file: root.img, target: rootfs, verify: true}
  - {type: env, target: bootenv, set: {bootcount: "0"}}
  - {type: wipe, target: data, mode: full}
`

// setup makes a key pair, two images and a spec in a temp dir and returns
// the dir.
func setup(t *testing.T) string {
	d := t.TempDir()
	if code, _, e := runTool(t, nil, "keygen", "-o", filepath.Join(d, "dev")); code != 0 {
		t.Fatalf("keygen: %d %s", code, e)
	}
	os.WriteFile(filepath.Join(d, "boot.img"), bytes.Repeat([]byte("boot"), 50000), 0o644)
	os.WriteFile(filepath.Join(d, "root.img"), make([]byte, 300000), 0o644)
	os.WriteFile(filepath.Join(d, "spec.yaml"), []byte(testSpec), 0o644)
	return d
}

func TestCreateInspectVerify(t *testing.T) {
	d := setup(t)
	out := filepath.Join(d, "demo.lfb")
	if code, _, e := runTool(t, nil, "create", "-spec", filepath.Join(d, "spec.yaml"), "-key", filepath.Join(d, "dev.key"), "-o", out); code != 0 {
		t.Fatalf("create: %d %s", code, e)
	}
	code, stdout, e := runTool(t, nil, "inspect", out, "-json", "-keys", filepath.Join(d, "dev.pub"))
	if code != 0 {
		t.Fatalf("inspect: %d %s", code, e)
	}
	var rep report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verified == nil || !*rep.Verified || rep.Manifest.Product != "demo" || len(rep.Manifest.Steps) != 5 {
		t.Errorf("inspect -json = %s", stdout)
	}
	if s := rep.Chunks["rootfs"]; s.Zero != 5 || s.Stored != 0 {
		t.Errorf("rootfs chunks = %+v, want 5 zero chunks and nothing stored", s)
	}
	if code, stdout, _ := runTool(t, nil, "inspect", out); code != 0 || !strings.Contains(stdout, "image rootfs -> rootfs (read back)") || !strings.Contains(stdout, "not checked") {
		t.Errorf("inspect = %d\n%s", code, stdout)
	}
	b, _ := os.ReadFile(out)
	if code, stdout, e := runTool(t, b, "verify", "-", "-keys", filepath.Join(d, "dev.pub")); code != 0 || !strings.Contains(stdout, "verified") {
		t.Errorf("verify from stdin = %d %s %s", code, stdout, e)
	}
}

func TestVerifyBad(t *testing.T) {
	d := setup(t)
	out := filepath.Join(d, "demo.lfb")
	runTool(t, nil, "create", "-spec", filepath.Join(d, "spec.yaml"), "-key", filepath.Join(d, "dev.key"), "-o", out)
	runTool(t, nil, "keygen", "-o", filepath.Join(d, "other"))
	good, _ := os.ReadFile(out)
	flip := func(off int) []byte { b := bytes.Clone(good); b[off] ^= 1; return b }
	for _, tc := range []struct {
		name   string
		bundle []byte
		keys   string
		want   int
	}{
		{"good", good, "dev.pub", exitcode.OK},
		{"unknown key", good, "other.pub", exitcode.Untrusted},
		{"manifest byte", flip(100), "dev.pub", exitcode.BadSignature},
		{"payload byte", flip(len(good) - 10), "dev.pub", exitcode.Corrupt},
		{"truncated", good[:len(good)-1], "dev.pub", exitcode.Truncated},
		{"not a bundle", []byte("hello world, this is not a bundle at all, no no no no no no no no"), "dev.pub", exitcode.Corrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, e := runTool(t, tc.bundle, "verify", "-", "-keys", filepath.Join(d, tc.keys))
			if code != tc.want {
				t.Errorf("verify = %d (%s), want %d", code, e, tc.want)
			}
			if code != 0 && strings.Count(e, "\n") != 1 {
				t.Errorf("want one line of reason, got %q", e)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"create"}, {"verify", "x"}, {"keygen"}, {"inspect"}} {
		if code, _, _ := runTool(t, nil, args...); code != exitcode.Usage {
			t.Errorf("lifeboat-bundle %v = %d, want %d", args, code, exitcode.Usage)
		}
	}
}

func TestKeygenNoOverwrite(t *testing.T) {
	d := setup(t)
	before, _ := os.ReadFile(filepath.Join(d, "dev.key"))
	if code, _, _ := runTool(t, nil, "keygen", "-o", filepath.Join(d, "dev")); code == 0 {
		t.Error("keygen over an existing key succeeded")
	}
	after, _ := os.ReadFile(filepath.Join(d, "dev.key"))
	if !bytes.Equal(before, after) {
		t.Error("keygen changed an existing key")
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"4096", 4096, true},
		{"512B", 512, true},
		{"64KiB", 64 << 10, true},
		{"64K", 64 << 10, true},
		{"1M", 1 << 20, true},
		{"1MiB", 1 << 20, true},
		{"10MiB", 10 << 20, true},
		{"2GiB", 2 << 30, true},
		{"16G", 16 << 30, true},
		{"1TiB", 1 << 40, true},
		{"16777215TiB", 16777215 << 40, true},
		{"010MiB", 0, false}, // octal to YAML and C
		{"010", 0, false},
		{"1iB", 0, false},
		{"1KB", 0, false},
		{"1k", 0, false},
		{"1 MiB", 0, false},
		{"0x1000", 0, false},
		{"1e6", 0, false},
		{"1_000", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"1.5M", 0, false},
		{"", 0, false},
		{"MiB", 0, false},
		{"99999999999T", 0, false},
		{"16777216TiB", 0, false},
		{"18446744073709551616", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
