// Package stationtest makes what the station's tests need: keys, a factory
// CA, signed bundles that declare per-unit fields, a configuration, and
// simulated units that speak the real protocol through the client package
// and send the installer's own events.
package stationtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Fixture is a folder with everything a station needs.
type Fixture struct {
	Dir         string
	BundleKey   bundle.Signer // signs bundles; its public key is in Dir/keys
	StationKeys string        // the rescue's station trust store (Dir/station-keys)
	StationPub  []byte
	CACert      string // Dir/ca.crt
}

// New writes keys and a CA into a temporary folder.
func New(t testing.TB) *Fixture {
	t.Helper()
	f := &Fixture{Dir: t.TempDir()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pub, priv, err := bundle.GenerateKey(nil)
	must(err)
	f.BundleKey = bundle.Ed25519Signer{Key: priv}
	pb, err := bundle.MarshalPublicKey(pub)
	must(err)
	must(os.MkdirAll(filepath.Join(f.Dir, "keys"), 0o755))
	must(os.WriteFile(filepath.Join(f.Dir, "keys", "release.pub"), pb, 0o644))

	spub, spriv, err := bundle.GenerateKey(nil)
	must(err)
	kb, err := unitdata.MarshalPrivateKey(spriv)
	must(err)
	must(os.WriteFile(filepath.Join(f.Dir, "station.key"), kb, 0o600))
	f.StationPub, err = unitdata.MarshalPublicKey(spub)
	must(err)
	f.StationKeys = filepath.Join(f.Dir, "station-keys")
	must(os.MkdirAll(f.StationKeys, 0o755))
	must(os.WriteFile(filepath.Join(f.StationKeys, "station.pub"), f.StationPub, 0o644))

	ck, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Factory CA", Organization: []string{"Lifeboat Test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ck.PublicKey, ck)
	must(err)
	f.CACert = filepath.Join(f.Dir, "ca.crt")
	must(os.WriteFile(f.CACert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	kder, err := x509.MarshalPKCS8PrivateKey(ck)
	must(err)
	must(os.WriteFile(filepath.Join(f.Dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	return f
}

// UnitFields are the per-unit fields the test bundles declare: the serial
// and the first MAC in U-Boot variables, the serial in a file and at a
// raw offset, the second MAC as 6 raw bytes, the certificate and key in
// files.
func UnitFields() []bundle.UnitField {
	return []bundle.UnitField{
		{Name: "serial", From: bundle.UnitFromSerial, Format: bundle.UnitFormatSerial, Pattern: `LB-[0-9]{6}`, To: []bundle.UnitDest{
			{Type: bundle.UnitToEnv, Target: "bootenv", Variable: "serial#"},
			{Type: bundle.UnitToFile, Target: "boot", Path: "factory/serial.txt"},
			{Type: bundle.UnitToRaw, Target: "disk", Offset: 4096, Size: 32},
		}},
		{Name: "mac0", From: bundle.UnitFromMAC, Index: 0, Format: bundle.UnitFormatMAC, To: []bundle.UnitDest{
			{Type: bundle.UnitToEnv, Target: "bootenv", Variable: "ethaddr"},
		}},
		{Name: "mac1", From: bundle.UnitFromMAC, Index: 1, Format: bundle.UnitFormatMAC, To: []bundle.UnitDest{
			{Type: bundle.UnitToEnv, Target: "bootenv", Variable: "eth1addr"},
			{Type: bundle.UnitToRaw, Target: "disk", Offset: 4128, Size: 6, Encoding: bundle.RawMACBinary},
		}},
		{Name: "cert", From: bundle.UnitFromCertificate, Format: bundle.UnitFormatPEM, To: []bundle.UnitDest{
			{Type: bundle.UnitToFile, Target: "boot", Path: "factory/unit.crt"},
		}},
		{Name: "key", From: bundle.UnitFromPrivateKey, Format: bundle.UnitFormatPEM, To: []bundle.UnitDest{
			{Type: bundle.UnitToFile, Target: "boot", Path: "factory/unit.key"},
		}},
	}
}

// Bundle writes a signed bundle into the fixture: product "demo-os",
// compatible with qemu-x86_64, one small image step, and fields. It
// returns the file's path.
func (f *Fixture) Bundle(t testing.TB, name, version string, compatible []string, fields []bundle.UnitField) string {
	t.Helper()
	m := bundle.Manifest{Product: "demo-os", Version: version, Compatible: compatible,
		Steps:    []bundle.Step{{Type: bundle.StepImage, Image: "rootfs", Target: "rootfs", Verify: true}},
		UnitData: fields}
	var buf bytes.Buffer
	w := bundle.NewWriter(&buf, m, bundle.WriterOptions{Signers: []bundle.Signer{f.BundleKey}, ChunkSize: bundle.MinChunkSize, Workers: 1})
	img := bytes.Repeat([]byte("lifeboat station test image "+version+"\n"), 20000)
	if _, err := w.AddImage("rootfs", bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.Dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Manifest reads a fixture bundle's manifest.
func (f *Fixture) Manifest(t testing.TB, path string) *bundle.Manifest {
	t.Helper()
	trust, err := bundle.LoadTrustStore(filepath.Join(f.Dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	br, err := bundle.NewReader(bytes.NewReader(b), trust)
	if err != nil {
		t.Fatal(err)
	}
	return br.Manifest()
}

// Options shape a configuration.
type Options struct {
	Name     string
	Listen   string // default 127.0.0.1:0
	Database string // default line.db in the fixture
	Serials  string // default "1-1000"
	MACPool  string // default 02:00:00:10:00:00-02:00:00:10:ff:ff
	Boards   []string
	Bundles  []string
	Allow    string // YAML of the allow list; default demo-os, any version
	NoCA     bool
	Extra    string // more YAML
}

// Config writes a station configuration and returns its path.
func (f *Fixture) Config(t testing.TB, o Options) string {
	t.Helper()
	if o.Name == "" {
		o.Name = "st1"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Database == "" {
		o.Database = filepath.Join(f.Dir, "line.db")
	}
	if o.Serials == "" {
		o.Serials = "1-1000"
	}
	if o.MACPool == "" {
		o.MACPool = "02:00:00:10:00:00-02:00:00:10:ff:ff"
	}
	if o.Boards == nil {
		o.Boards = []string{"qemu-x86_64"}
	}
	if o.Allow == "" {
		o.Allow = "[{product: demo-os}]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nlisten: %q\ndatabase: %q\nstation_key: station.key\n", o.Name, o.Listen, o.Database)
	fmt.Fprintf(&b, "serials: {format: \"LB-%%06d\", range: %q}\nmacs: {pool: %q, per_unit: 2}\n", o.Serials, o.MACPool)
	fmt.Fprintf(&b, "boards: [%s]\n", strings.Join(quote(o.Boards), ", "))
	fmt.Fprintf(&b, "bundles:\n  keys: [keys]\n  files: [%s]\n  allow: %s\n", strings.Join(quote(o.Bundles), ", "), o.Allow)
	if !o.NoCA {
		b.WriteString("factory_ca: {cert: ca.crt, key: ca.key}\n")
	}
	b.WriteString(o.Extra)
	p := filepath.Join(f.Dir, o.Name+".yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func quote(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("%q", s))
	}
	return out
}

// Context returns a context that ends with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}
