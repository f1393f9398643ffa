package unitdata

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

func keyPEM(t testing.TB) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func manifest() *bundle.Manifest {
	return &bundle.Manifest{Product: "demo-os", Version: "1.0", IndexSHA256: strings.Repeat("ab", 32),
		UnitData: []bundle.UnitField{
			{Name: "serial", From: bundle.UnitFromSerial, Format: bundle.UnitFormatSerial, Pattern: "LB-[0-9]{6}", To: []bundle.UnitDest{
				{Type: bundle.UnitToEnv, Target: "uboot", Variable: "serial#"},
				{Type: bundle.UnitToFile, Target: "boot", Path: "factory/serial"},
				{Type: bundle.UnitToRaw, Target: "disk", Offset: 512, Size: 16},
			}},
			{Name: "mac0", From: bundle.UnitFromMAC, Format: bundle.UnitFormatMAC, To: []bundle.UnitDest{
				{Type: bundle.UnitToEnv, Target: "uboot", Variable: "ethaddr"},
				{Type: bundle.UnitToRaw, Target: "disk", Offset: 528, Size: 6, Encoding: bundle.RawMACBinary},
			}},
			{Name: "key", From: bundle.UnitFromPrivateKey, Format: bundle.UnitFormatPEM, To: []bundle.UnitDest{
				{Type: bundle.UnitToFile, Target: "boot", Path: "factory/unit.key"},
			}},
		}}
}

var hw = Hardware{EMMCCID: "15010051", MAC: "52:54:00:12:34:56"}

func data(t testing.TB, m *bundle.Manifest) *Data {
	return &Data{Format: FormatVersion, Station: "st1", Serial: "LB-000042", Hardware: hw,
		Bundle: BundleRef{Product: m.Product, Version: m.Version, IndexSHA256: m.IndexSHA256},
		Issued: time.Unix(1700000000, 0).UTC(),
		Values: map[string]string{"serial": "LB-000042", "mac0": "02:00:00:00:10:0a", "key": keyPEM(t)}}
}

func signer(t testing.TB) (bundle.Signer, *bundle.TrustStore) {
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return bundle.Ed25519Signer{Key: priv}, bundle.NewTrustStore(pub)
}

func TestCheckValue(t *testing.T) {
	f := func(format, pattern string) *bundle.UnitField {
		return &bundle.UnitField{Name: "f", Format: format, Pattern: pattern}
	}
	good := keyPEM(t)
	for _, tc := range []struct {
		field *bundle.UnitField
		v     string
		ok    bool
	}{
		{f("serial", ""), "LB-000001", true},
		{f("serial", ""), "a.b_c-D9", true},
		{f("serial", ""), "", false},
		{f("serial", ""), "LB 1", false},
		{f("serial", ""), "../etc", false},
		{f("serial", ""), strings.Repeat("x", 65), false},
		{f("serial", ""), "LB-1\n", false},
		{f("serial", "LB-[0-9]{6}"), "LB-000001", true},
		{f("serial", "LB-[0-9]{6}"), "LB-0000012", false}, // anchored
		{f("serial", "LB-[0-9]{6}"), "XLB-000001", false},
		{f("mac", ""), "02:00:00:00:10:0a", true},
		{f("mac", ""), "02:00:00:00:10:0A", false},
		{f("mac", ""), "03:00:00:00:10:0a", false}, // multicast
		{f("mac", ""), "02-00-00-00-10-0a", false},
		{f("mac", ""), "02:00:00:00:10", false},
		{f("pem", ""), good, true},
		{f("pem", ""), good + good, true},
		{f("pem", ""), good + "rm -rf /", false},
		{f("pem", ""), "no pem", false},
		{f("text", ""), "hello world", true},
		{f("text", ""), "two\nlines", false},
		{f("text", ""), "caf\u00e9", false},
		{f("text", "[a-z]+"), "abc", true},
		{f("nope", ""), "x", false},
	} {
		err := CheckValue(tc.field, tc.v)
		if (err == nil) != tc.ok {
			t.Errorf("CheckValue(%s /%s/, %q) = %v, want ok %v", tc.field.Format, tc.field.Pattern, tc.v, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrValue) {
			t.Errorf("CheckValue(%q) = %v, want ErrValue", tc.v, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	m := manifest()
	s, store := signer(t)
	d := data(t, m)
	signed, err := Sign(d, s)
	if err != nil {
		t.Fatal(err)
	}
	got, signers, err := Verify(signed, store)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" || len(signers) != 1 {
		t.Errorf("Verify() mismatch (-want +got):\n%s signers %v", diff, signers)
	}

	other, otherStore := signer(t)
	forged, _ := Sign(d, other)
	if _, _, err := Verify(forged, store); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Verify(signed by an untrusted key) = %v, want ErrUntrusted", err)
	}
	// Changed after signing: the serial swapped in the signed bytes.
	var env Signed
	json.Unmarshal(signed, &env)
	env.Data = bytes.Replace(env.Data, []byte("LB-000042"), []byte("LB-000043"), -1)
	tampered, _ := json.Marshal(env)
	if _, _, err := Verify(tampered, store); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify(tampered) = %v, want ErrSignature", err)
	}
	// A signature over another message by the trusted key: a bundle
	// manifest signature never verifies as unit data.
	env.Signatures[0].Value = must(s.Sign(append([]byte("lifeboat bundle manifest v1\n"), env.Data...)))
	crossed, _ := json.Marshal(env)
	if _, _, err := Verify(crossed, store); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify(manifest-prefixed signature) = %v, want ErrSignature", err)
	}
	// Signed by both: the trusted one is enough; an untrusted store
	// refuses.
	both, _ := Sign(d, other, s)
	if _, ids, err := Verify(both, store); err != nil || len(ids) != 1 {
		t.Errorf("Verify(two signatures) = %v, %v", ids, err)
	}
	if _, _, err := Verify(signed, otherStore); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Verify(against another store) = %v, want ErrUntrusted", err)
	}
	if _, _, err := Verify(signed, nil); !errors.Is(err, ErrUntrusted) {
		t.Errorf("Verify(no store) = %v, want ErrUntrusted", err)
	}
	for _, bad := range []string{"", "{", `{"data":"!!"}`, strings.Repeat(" ", MaxSigned+1)} {
		if _, _, err := Verify([]byte(bad), store); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUntrusted) {
			t.Errorf("Verify(%.20q) = %v, want ErrMalformed or ErrUntrusted", bad, err)
		}
	}
	// Unknown fields in signed data are refused, not ignored.
	raw, _ := json.Marshal(map[string]any{"format": 1, "values": map[string]string{}, "admin": true})
	sig, _ := s.Sign(message(raw))
	odd, _ := json.Marshal(Signed{Data: raw, Signatures: []bundle.Signature{{KeyID: s.KeyID(), Algorithm: "ed25519", Value: sig}}})
	if _, _, err := Verify(odd, store); !errors.Is(err, ErrMalformed) {
		t.Errorf("Verify(unknown field) = %v, want ErrMalformed", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestApply(t *testing.T) {
	m := manifest()
	d := data(t, m)
	p, err := Apply(d, m, hw)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 16)
	copy(raw, "LB-000042")
	want := &Plan{
		Env:   map[string]map[string]string{"uboot": {"serial#": "LB-000042", "ethaddr": "02:00:00:00:10:0a"}},
		Files: []File{{Field: "serial", Target: "boot", Path: "factory/serial", Data: []byte("LB-000042")}, {Field: "key", Target: "boot", Path: "factory/unit.key", Data: []byte(d.Values["key"])}},
		Raw:   []Raw{{Field: "serial", Target: "disk", Offset: 512, Data: raw}, {Field: "mac0", Target: "disk", Offset: 528, Data: []byte{2, 0, 0, 0, 0x10, 0x0a}}},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Apply() mismatch (-want +got):\n%s", diff)
	}
}

func TestApplyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Data, *bundle.Manifest, *Hardware)
		want error
	}{
		{"undeclared value", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Values["bootcmd"] = "run evil" }, ErrUndeclared},
		{"declared field missing", func(d *Data, m *bundle.Manifest, h *Hardware) { delete(d.Values, "mac0") }, ErrUndeclared},
		{"serial breaks pattern", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Values["serial"] = "LB-42" }, ErrValue},
		{"serial with a newline", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Values["serial"] = "LB-000042\nbootcmd=x" }, ErrValue},
		{"mac multicast", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Values["mac0"] = "01:00:5e:00:00:01" }, ErrValue},
		{"other bundle", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Bundle.Version = "0.9" }, ErrMismatch},
		{"other index", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Bundle.IndexSHA256 = strings.Repeat("cd", 32) }, ErrMismatch},
		{"other board", func(d *Data, m *bundle.Manifest, h *Hardware) { h.EMMCCID = "99" }, ErrMismatch},
		{"no hardware", func(d *Data, m *bundle.Manifest, h *Hardware) { d.Hardware = Hardware{}; *h = Hardware{} }, ErrMismatch},
		{"raw too small", func(d *Data, m *bundle.Manifest, h *Hardware) { m.UnitData[0].To[2].Size = 4 }, ErrValue},
		{"variable twice", func(d *Data, m *bundle.Manifest, h *Hardware) { m.UnitData[1].To[0].Variable = "serial#" }, ErrValue},
		{"raw overlap", func(d *Data, m *bundle.Manifest, h *Hardware) { m.UnitData[1].To[1].Offset = 520 }, ErrValue},
		{"file twice", func(d *Data, m *bundle.Manifest, h *Hardware) { m.UnitData[2].To[0].Path = "factory/serial" }, ErrValue},
		{"bad manifest", func(d *Data, m *bundle.Manifest, h *Hardware) { m.UnitData[2].To[0].Path = "../etc/shadow" }, bundle.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := manifest()
			d := data(t, m)
			h := hw
			tc.mod(d, m, &h)
			if _, err := Apply(d, m, h); !errors.Is(err, tc.want) {
				t.Errorf("Apply() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStationTrustStore(t *testing.T) {
	dir := t.TempDir()
	pub, priv, _ := bundle.GenerateKey(nil)
	marked, _ := MarshalPublicKey(pub)
	plain, _ := bundle.MarshalPublicKey(pub)
	os.WriteFile(filepath.Join(dir, "marked.pub"), marked, 0o644)
	ts, err := LoadTrustStore(dir)
	if err != nil || len(ts.KeyIDs()) != 1 {
		t.Fatalf("LoadTrustStore(marked key) = %v", err)
	}
	// The bundle trust store refuses a station key.
	if _, err := bundle.LoadTrustStore(dir); !errors.Is(err, bundle.ErrKeyUsage) {
		t.Errorf("bundle.LoadTrustStore(station key) = %v, want ErrKeyUsage", err)
	}
	// A bundle key (unmarked) is not a station key.
	os.WriteFile(filepath.Join(dir, "release.pub"), plain, 0o644)
	if _, err := LoadTrustStore(dir); !errors.Is(err, ErrKeyUsage) {
		t.Errorf("LoadTrustStore(bundle key) = %v, want ErrKeyUsage", err)
	}
	// Private halves: a station key parses as one, a bundle key does not;
	// lifeboat-bundle's check refuses the station key.
	kb, _ := MarshalPrivateKey(priv)
	if _, err := ParsePrivateKey(kb); err != nil {
		t.Errorf("ParsePrivateKey(station key) = %v", err)
	}
	if err := bundle.CheckSigningKey(kb); !errors.Is(err, bundle.ErrKeyUsage) {
		t.Errorf("bundle.CheckSigningKey(station key) = %v, want ErrKeyUsage", err)
	}
	bk, _ := bundle.MarshalPrivateKey(priv)
	if _, err := ParsePrivateKey(bk); !errors.Is(err, ErrKeyUsage) {
		t.Errorf("ParsePrivateKey(bundle key) = %v, want ErrKeyUsage", err)
	}
	if _, err := LoadTrustStore(t.TempDir()); err == nil {
		t.Errorf("LoadTrustStore(empty) = nil")
	}
}

func TestHardwareKey(t *testing.T) {
	for _, tc := range []struct {
		h    Hardware
		want string
	}{
		{Hardware{EMMCCID: "a", CPUSerial: "b", MAC: "c"}, "cid:a"},
		{Hardware{CPUSerial: "b", MAC: "c"}, "cpu:b"},
		{Hardware{MAC: "c"}, "mac:c"},
		{Hardware{}, ""},
	} {
		if got := tc.h.Key(); got != tc.want {
			t.Errorf("%+v.Key() = %q, want %q", tc.h, got, tc.want)
		}
	}
}

// FuzzVerifyApply: no signed document, however made, panics Verify or
// Apply, and whatever Apply returns passed Check.
func FuzzVerifyApply(f *testing.F) {
	s, store := signer(f)
	m := manifest()
	good, _ := Sign(data(f, m), s)
	f.Add(good, false)
	f.Add([]byte(`{"data":"e30=","signatures":[]}`), true)
	f.Fuzz(func(t *testing.T, b []byte, resign bool) {
		if resign {
			// Sign the fuzzed bytes as data, so the parser behind the
			// signature is reached.
			sig, _ := s.Sign(message(b))
			b, _ = json.Marshal(Signed{Data: b, Signatures: []bundle.Signature{{KeyID: s.KeyID(), Algorithm: "ed25519", Value: sig}}})
		}
		d, _, err := Verify(b, store)
		if err != nil {
			return
		}
		if _, err := Apply(d, manifest(), hw); err == nil {
			if err := Check(d, manifest(), hw); err != nil {
				t.Errorf("Apply accepted what Check refuses: %v", err)
			}
		}
	})
}
