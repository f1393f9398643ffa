package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

func Example() {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

	// Write a bundle with one image and one step.
	var buf bytes.Buffer
	m := bundle.Manifest{
		Product:         "thermostat",
		Version:         "2.1.0",
		SecurityVersion: 4,
		Compatible:      []string{"tstat-v2"},
		Steps:           []bundle.Step{{Type: bundle.StepImage, Image: "rootfs", Target: "rootfs"}},
	}
	w := bundle.NewWriter(&buf, m, bundle.WriterOptions{Signers: []bundle.Signer{bundle.Ed25519Signer{Key: priv}}})
	if _, err := w.AddImage("rootfs", strings.NewReader(strings.Repeat("root filesystem ", 100000))); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// Read it back as a device would: only with the key in its trust store.
	trust := bundle.NewTrustStore(priv.Public().(ed25519.PublicKey))
	r, err := bundle.NewReader(&buf, trust)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Manifest().Product, r.Manifest().Version, "for", r.Manifest().Compatible)
	for {
		im, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r) // every byte verified before it is returned
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(im.Name, n, "bytes in", im.Chunks, "chunks")
	}
	// Output:
	// thermostat 2.1.0 for [tstat-v2]
	// rootfs 1600000 bytes in 2 chunks
}
