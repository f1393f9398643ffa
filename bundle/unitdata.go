package bundle

import (
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Per-unit data: the values a factory station fills in for each board
// (serial number, MAC addresses, a certificate). The bundle's signed
// manifest declares every such field, its format and where it goes; the
// station signs the values with a station key, and the device (package
// unitdata) refuses any value the manifest did not declare or that breaks
// its declared format. docs/station.md describes the whole flow.

// Unit field formats: what a value must look like.
const (
	// UnitFormatSerial is a serial number: 1 to 64 characters of
	// A-Z a-z 0-9 and . _ - (never a path separator, a space or a quote).
	UnitFormatSerial = "serial"
	// UnitFormatMAC is a unicast MAC address, six lowercase hex pairs
	// separated by colons.
	UnitFormatMAC = "mac"
	// UnitFormatPEM is one or more PEM blocks and nothing else.
	UnitFormatPEM = "pem"
	// UnitFormatText is printable ASCII without newlines; give it a
	// Pattern to narrow it.
	UnitFormatText = "text"
)

// Unit field sources: which of the station's per-unit values fills a field.
const (
	UnitFromSerial      = "serial"         // the unit's serial number
	UnitFromMAC         = "mac"            // MAC address number Index of the unit (0-based)
	UnitFromCertificate = "certificate"    // the unit's X.509 certificate (PEM), signed by the factory CA
	UnitFromPrivateKey  = "private_key"    // the unit's private key (PEM, PKCS #8)
	UnitFromCA          = "ca_certificate" // the factory CA's certificate (PEM)
)

// Unit data destinations.
const (
	UnitToEnv  = "env"  // a bootloader variable in an env target (a board profile bootenv name)
	UnitToFile = "file" // a file in a filesystem (FAT) on a target
	UnitToRaw  = "raw"  // bytes at an offset of a target
)

// Raw encodings: how a value becomes bytes at a raw offset.
const (
	RawText      = "text"       // the value's bytes, padded with NUL up to Size
	RawMACBinary = "mac-binary" // a MAC as its 6 bytes
)

// MaxUnitValue bounds a per-unit value (a certificate chain fits easily).
const MaxUnitValue = 64 << 10

// UnitField declares one per-unit value.
type UnitField struct {
	// Name identifies the field in the station's signed unit data.
	Name string `json:"name"`
	// From says which per-unit value the station puts in: one of the
	// UnitFrom constants.
	From string `json:"from"`
	// Index picks the MAC address for From "mac" (0 is the first).
	Index int `json:"index,omitempty"`
	// Format is what the value must look like: one of the UnitFormat
	// constants.
	Format string `json:"format"`
	// Pattern, optional, is a regular expression (RE2, matched against
	// the whole value) the value must also match.
	Pattern string `json:"pattern,omitempty"`
	// To lists where the value is written; at least one place.
	To []UnitDest `json:"to"`
}

// UnitDest is one place a per-unit value is written.
type UnitDest struct {
	Type   string `json:"type"`   // UnitToEnv, UnitToFile or UnitToRaw
	Target string `json:"target"` // bootenv name (env), or a target name as for steps (file, raw)

	// UnitToEnv: the variable, e.g. "serial#" or "ethaddr".
	Variable string `json:"variable,omitempty"`
	// UnitToFile: the path inside the filesystem, relative to its root.
	Path string `json:"path,omitempty"`
	// UnitToRaw: where, how many bytes are reserved, and the encoding.
	Offset   uint64 `json:"offset,omitempty"`
	Size     uint64 `json:"size,omitempty"`
	Encoding string `json:"encoding,omitempty"`
}

// unitNameRE keeps field names plain: they are JSON keys, log words and
// CSV columns.
var unitNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidateUnitData checks the manifest's per-unit field declarations.
func (m *Manifest) ValidateUnitData() error {
	seen := map[string]bool{}
	for i, f := range m.UnitData {
		if err := f.validate(); err != nil {
			return fmt.Errorf("%w: unit_data %d (%q): %v", ErrFormat, i+1, f.Name, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("%w: unit_data field %q declared twice", ErrFormat, f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// UnitField returns the declared field called name, or nil.
func (m *Manifest) UnitField(name string) *UnitField {
	for i := range m.UnitData {
		if m.UnitData[i].Name == name {
			return &m.UnitData[i]
		}
	}
	return nil
}

func (f *UnitField) validate() error {
	if !unitNameRE.MatchString(f.Name) {
		return fmt.Errorf("name must match %s", unitNameRE)
	}
	switch f.From {
	case UnitFromSerial, UnitFromCertificate, UnitFromPrivateKey, UnitFromCA:
		if f.Index != 0 {
			return fmt.Errorf("index is for from %q only", UnitFromMAC)
		}
	case UnitFromMAC:
		if f.Index < 0 || f.Index > 255 {
			return fmt.Errorf("mac index %d out of [0, 255]", f.Index)
		}
	default:
		return fmt.Errorf("from %q, want serial, mac, certificate, private_key or ca_certificate", f.From)
	}
	switch f.Format {
	case UnitFormatSerial, UnitFormatMAC, UnitFormatPEM, UnitFormatText:
	default:
		return fmt.Errorf("format %q, want serial, mac, pem or text", f.Format)
	}
	if f.Pattern != "" {
		if _, err := f.Regexp(); err != nil {
			return fmt.Errorf("pattern: %v", err)
		}
	}
	if len(f.To) == 0 {
		return fmt.Errorf("no destination (to)")
	}
	for j, d := range f.To {
		if err := d.validate(f); err != nil {
			return fmt.Errorf("to %d: %v", j+1, err)
		}
	}
	return nil
}

// Regexp compiles the field's Pattern anchored at both ends; nil without
// a pattern.
func (f *UnitField) Regexp() (*regexp.Regexp, error) {
	if f.Pattern == "" {
		return nil, nil
	}
	return regexp.Compile(`^(?:` + f.Pattern + `)$`)
}

func (d *UnitDest) validate(f *UnitField) error {
	if d.Target == "" {
		return fmt.Errorf("no target")
	}
	switch d.Type {
	case UnitToEnv:
		if d.Variable == "" || strings.ContainsAny(d.Variable, "=\x00") {
			return fmt.Errorf("bad variable name %q", d.Variable)
		}
		if f.Format == UnitFormatPEM {
			return fmt.Errorf("a PEM value cannot go into a bootloader variable")
		}
	case UnitToFile:
		if err := checkRelPath(d.Path); err != nil {
			return err
		}
	case UnitToRaw:
		if d.Size == 0 {
			return fmt.Errorf("raw destination needs a size")
		}
		if d.Size > MaxUnitValue {
			return fmt.Errorf("raw size %d above %d", d.Size, MaxUnitValue)
		}
		if d.Offset > 1<<62 {
			return fmt.Errorf("raw offset %d too large", d.Offset)
		}
		switch d.Encoding {
		case "", RawText:
		case RawMACBinary:
			if f.Format != UnitFormatMAC || d.Size != 6 {
				return fmt.Errorf("encoding %s needs format mac and size 6", RawMACBinary)
			}
		default:
			return fmt.Errorf("encoding %q, want text or mac-binary", d.Encoding)
		}
	default:
		return fmt.Errorf("type %q, want env, file or raw", d.Type)
	}
	return nil
}

// checkRelPath allows a plain relative path inside a filesystem: no "..",
// no absolute path, no empty element.
func checkRelPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("bad file path %q: want a relative path like dir/name", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == "" || e == "." || e == ".." {
			return fmt.Errorf("bad file path %q: want a relative path like dir/name", p)
		}
	}
	return nil
}

// Key usage: a key made for signing unit data (a factory station's key)
// carries the PEM header "Lifeboat-Key-Usage: unit-data". Such a key is
// never a bundle key: LoadTrustStore refuses its public half and
// lifeboat-bundle refuses to sign with its private half.
const (
	KeyUsageHeader   = "Lifeboat-Key-Usage"
	KeyUsageUnitData = "unit-data"
)

// ErrKeyUsage means a key was offered for a role it is not made for: a
// station (unit data) key as a bundle key.
var ErrKeyUsage = errors.New("bundle: key is for another use")

// KeyUsage returns the Lifeboat-Key-Usage header of the first PEM block of
// b ("" when there is none).
func KeyUsage(b []byte) string {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return ""
	}
	return blk.Headers[KeyUsageHeader]
}

// checkBundleKeyUsage refuses a PEM key marked for another use.
func checkBundleKeyUsage(b []byte) error {
	if u := KeyUsage(b); u != "" {
		return fmt.Errorf("%w: marked %q (a factory station key signs unit data, never bundles)", ErrKeyUsage, u)
	}
	return nil
}

// CheckSigningKey refuses a private key file that is marked for another
// use than signing bundles. lifeboat-bundle calls it before signing.
func CheckSigningKey(pemBytes []byte) error { return checkBundleKeyUsage(pemBytes) }

// PublicKey returns the trusted key with the given id.
func (t *TrustStore) PublicKey(id string) (ed25519.PublicKey, bool) {
	if t == nil {
		return nil, false
	}
	k, ok := t.keys[id]
	return k, ok
}
