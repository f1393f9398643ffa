package install

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/bundle/bundletest"
	"github.com/lifeboat-updater/lifeboat/exitcode"
	"github.com/lifeboat-updater/lifeboat/install/installtest"
)

// TestZeroChunkGuarantee: the install engine writes zeros for a zero
// chunk (pipeline.go) and compares a target with zeros for it (Matches,
// in skip-unchanged, verify and the flash paths) without hashing. That is
// right only because a Reader hands out no zero chunk whose signed hash
// is not the hash of zero bytes: a bundle whose index marks a chunk of
// other bytes "zero" is refused when it is opened, so no plan is made
// from it. Every zero chunk a Reader does hand out matches zeros.
func TestZeroChunkGuarantee(t *testing.T) {
	k := installtest.NewKey(t)
	data := installtest.Data(1, 10*cs, cs) // chunks 3 and 8 are zeros
	b := installtest.Bundle(t, k, installtest.Manifest(bundle.Step{Type: bundle.StepImage, Target: "rootfs", Image: "rootfs"}), cs,
		installtest.Image{Name: "rootfs", Data: data})

	br, err := bundle.NewReaderAt(bytes.NewReader(b), int64(len(b)), k.Trust())
	if err != nil {
		t.Fatal(err)
	}
	chunks, _ := br.Chunks("rootfs")
	zeros := 0
	for _, c := range chunks {
		if c.Zero() {
			zeros++
			if !c.Matches(make([]byte, c.Size)) {
				t.Errorf("%v: a zero chunk that does not match zeros", &c)
			}
		}
	}
	if zeros != 2 {
		t.Fatalf("%d zero chunks, want 2", zeros)
	}

	p, err := bundletest.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.MakeZero(2); err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(bundle.Ed25519Signer{Key: k.Priv}); err != nil {
		t.Fatal(err)
	}
	forged := p.Bytes()
	_, err = bundle.NewReaderAt(bytes.NewReader(forged), int64(len(forged)), k.Trust())
	if !errors.Is(err, bundle.ErrFormat) || ExitCode(err) != exitcode.Corrupt {
		t.Errorf("NewReaderAt(chunk 2 marked zero) = %v (exit %d), want ErrFormat (exit %d)", err, ExitCode(err), exitcode.Corrupt)
	}
	if _, err := bundle.NewReader(bytes.NewReader(forged), k.Trust()); !errors.Is(err, bundle.ErrFormat) {
		t.Errorf("NewReader(chunk 2 marked zero) = %v, want ErrFormat", err)
	}
}
