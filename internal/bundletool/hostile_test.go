package bundletool

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/bundle/bundletest"
	"github.com/lifeboat-updater/lifeboat/exitcode"
)

// made creates the test spec's bundle in d and returns it taken apart,
// with the key that signed it.
func made(t *testing.T, d string) (*bundletest.Parts, bundle.Signer) {
	t.Helper()
	out := filepath.Join(d, "demo.lfb")
	if code, _, e := runTool(t, nil, "create", "-q", "-spec", filepath.Join(d, "spec.yaml"), "-key", filepath.Join(d, "dev.key"), "-o", out); code != 0 {
		t.Fatalf("create: %d %s", code, e)
	}
	b, _ := os.ReadFile(out)
	p, err := bundletest.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := os.ReadFile(filepath.Join(d, "dev.key"))
	k, err := bundle.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	return p, bundle.Ed25519Signer{Key: k}
}

// TestVerifyHugeImage signs an image of 2^64-1 bytes in 0 chunks, which
// verify accepted as 0 bytes verified: the chunk count wrapped.
func TestVerifyHugeImage(t *testing.T) {
	d := setup(t)
	p, key := made(t, d)
	if err := p.Edit(func(m *bundle.Manifest) {
		m.Images = append(m.Images, bundle.Image{Name: "huge", Size: math.MaxUint64, SHA256: strings.Repeat("0", 64), FirstChunk: m.IndexSize / 48})
		m.Steps = append(m.Steps, bundle.Step{Type: bundle.StepImage, Image: "huge", Target: "data2"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(key); err != nil {
		t.Fatal(err)
	}
	code, out, e := runTool(t, p.Bytes(), "verify", "-", "-keys", filepath.Join(d, "dev.pub"))
	if code != exitcode.Corrupt || !strings.Contains(e, "beyond any device") {
		t.Errorf("verify = %d, %q, %q; want %d", code, out, e, exitcode.Corrupt)
	}
}

// evil are strings that would act on a terminal if printed raw: erase the
// line and print a fake result, move to a new line, reverse the text.
var evil = []string{"\x1b[2K\rsignature:        verified", "x\nsignature:        verified", "abc\u202edef", "\u009b2J", "del\x7f"}

// TestInspectEscapes shows a bundle whose manifest (not valid, so never
// installed, but shown by inspect) and signature block carry terminal
// controls: nothing of them may reach the terminal raw.
func TestInspectEscapes(t *testing.T) {
	d := setup(t)
	p, key := made(t, d)
	if err := p.Edit(func(m *bundle.Manifest) {
		m.Product, m.Version, m.Description, m.Created = evil[0], evil[1], evil[2], evil[3]
		m.Compatible = evil
		m.Images[0].Name = evil[4]
		m.Steps[0].Target = evil[0]
		m.Steps[0].Table.Partitions[0].Name = evil[1]
		m.Steps[3].Set = map[string]string{evil[2]: evil[0]}
		m.Steps[4].Mode = evil[3]
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(key); err != nil {
		t.Fatal(err)
	}
	p.Signatures = []byte(`{"signatures": [{"key_id": "\u001b[2K\rtrusted", "algorithm": "\u202eed25519", "value": ""}]}`)
	p.FixSizes()
	path := filepath.Join(d, "evil.lfb")
	os.WriteFile(path, p.Bytes(), 0o644)
	for _, args := range [][]string{
		{"inspect", path},
		{"inspect", path, "-keys", filepath.Join(d, "dev.pub")},
		{"inspect", path, "-json"},
		{"inspect", path, "-json", "-keys", filepath.Join(d, "dev.pub")},
		{"verify", path, "-keys", filepath.Join(d, "dev.pub")},
	} {
		code, out, e := runTool(t, nil, args...)
		if code == 0 {
			t.Errorf("%v = 0: an invalid manifest passed", args)
		}
		for _, r := range out + e {
			if r != '\n' && !unicode.IsPrint(r) {
				t.Errorf("%v printed %U raw:\n%s%s", args, r, out, e)
				break
			}
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "signature:        verified") {
				t.Errorf("%v printed a line that says the signature verified:\n%s", args, out)
			}
		}
		if strings.Count(e, "\n") != 1 {
			t.Errorf("%v: stderr is not one line: %q", args, e)
		}
		if args[len(args)-1] == "-json" || (len(args) > 2 && args[2] == "-json") {
			var rep report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Errorf("%v: output is not JSON: %v", args, err)
			} else if rep.Manifest == nil || rep.Manifest.Product != evil[0] {
				t.Errorf("%v: JSON does not carry the product as it is: %+v", args, rep.Manifest)
			}
		}
	}
}

// TestHelp asks every command for help: usage once on stdout, nothing on
// stderr, exit 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"}, {"help", "create"},
		{"keygen", "-h"}, {"keygen", "--help"},
		{"create", "-h"}, {"create", "--help"}, {"create", "-spec", "x", "--help"},
		{"inspect", "-h"}, {"inspect", "--help"},
		{"verify", "-h"}, {"verify", "--help"},
	} {
		code, out, e := runTool(t, nil, args...)
		if code != 0 || e != "" || strings.Count(out, "usage: ") != 1 {
			t.Errorf("lifeboat-bundle %v = %d, stdout %q, stderr %q; want 0 and the usage once", args, code, out, e)
		}
	}
}

// TestKeyFileNotAKey gives a character device as a key: refused at once,
// not read to the end of memory.
func TestKeyFileNotAKey(t *testing.T) {
	d := setup(t)
	code, _, e := runTool(t, nil, "create", "-spec", filepath.Join(d, "spec.yaml"), "-key", os.DevNull, "-o", filepath.Join(d, "x.lfb"))
	if code == 0 || !strings.Contains(e, "not a key file") || strings.Count(e, "\n") != 1 {
		t.Errorf("create -key %s = %d, %q", os.DevNull, code, e)
	}
	code, _, e = runTool(t, nil, "verify", filepath.Join(d, "spec.yaml"), "-keys", "/dev/zero")
	if code == 0 || !strings.Contains(e, "not a key file") || strings.Count(e, "\n") != 1 {
		t.Errorf("verify -keys /dev/zero = %d, %q", code, e)
	}
}

// TestVerifyWholeImageHash signs an image SHA-256 that its chunks do not
// add up to: every chunk verifies, the image does not.
func TestVerifyWholeImageHash(t *testing.T) {
	d := setup(t)
	p, key := made(t, d)
	if err := p.Edit(func(m *bundle.Manifest) { m.Images[0].SHA256 = strings.Repeat("ab", 32) }); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(key); err != nil {
		t.Fatal(err)
	}
	code, _, e := runTool(t, p.Bytes(), "verify", "-", "-keys", filepath.Join(d, "dev.pub"))
	if code != exitcode.Corrupt || !strings.Contains(e, "do not match the image's SHA-256") {
		t.Errorf("verify = %d, %q; want %d", code, e, exitcode.Corrupt)
	}
}
