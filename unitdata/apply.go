package unitdata

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net"
	"regexp"
	"sort"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

var (
	serialRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	macRE    = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
)

// CheckValue reports whether v has the declared format of field f.
func CheckValue(f *bundle.UnitField, v string) error {
	if len(v) > bundle.MaxUnitValue {
		return fmt.Errorf("%w: field %q: %d bytes, at most %d", ErrValue, f.Name, len(v), bundle.MaxUnitValue)
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: field %q (%s): %q %s", ErrValue, f.Name, f.Format, clip(v), why)
	}
	switch f.Format {
	case bundle.UnitFormatSerial:
		if !serialRE.MatchString(v) {
			return bad("is not 1 to 64 of A-Z a-z 0-9 . _ -")
		}
	case bundle.UnitFormatMAC:
		if !macRE.MatchString(v) {
			return bad("is not a MAC address like 02:00:00:00:00:01")
		}
		if hw, _ := net.ParseMAC(v); hw[0]&1 != 0 {
			return bad("is a multicast address")
		}
	case bundle.UnitFormatPEM:
		rest, n := []byte(v), 0
		for {
			blk, r := pem.Decode(rest)
			if blk == nil {
				break
			}
			rest, n = r, n+1
		}
		if n == 0 || len(bytes.TrimSpace(rest)) != 0 {
			return bad("is not PEM blocks only")
		}
	case bundle.UnitFormatText:
		for _, c := range []byte(v) {
			if c < 0x20 || c > 0x7e {
				return bad("holds a byte that is not printable ASCII")
			}
		}
	default:
		return fmt.Errorf("%w: field %q: unknown format %q", ErrValue, f.Name, f.Format)
	}
	re, err := f.Regexp()
	if err != nil {
		return fmt.Errorf("%w: field %q: pattern: %v", ErrValue, f.Name, err)
	}
	if re != nil && !re.MatchString(v) {
		return bad("does not match " + f.Pattern)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Check checks data against the manifest of the bundle being installed
// and the board it runs on: the data must be for this bundle and this
// board, every value must be for a declared field and have its format, and
// every declared field must have a value.
func Check(d *Data, m *bundle.Manifest, hw Hardware) error {
	want := BundleRef{Product: m.Product, Version: m.Version, IndexSHA256: m.IndexSHA256}
	if d.Bundle != want {
		return fmt.Errorf("%w: data for bundle %s %s (index %.12s), installing %s %s (index %.12s)",
			ErrMismatch, d.Bundle.Product, d.Bundle.Version, d.Bundle.IndexSHA256, m.Product, m.Version, m.IndexSHA256)
	}
	if d.Hardware.Key() == "" || d.Hardware.Key() != hw.Key() {
		return fmt.Errorf("%w: data for board %q, this board is %q", ErrMismatch, d.Hardware.Key(), hw.Key())
	}
	names := make([]string, 0, len(d.Values))
	for n := range d.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := m.UnitField(n)
		if f == nil {
			return fmt.Errorf("%w: %q", ErrUndeclared, n)
		}
		if err := CheckValue(f, d.Values[n]); err != nil {
			return err
		}
	}
	for _, f := range m.UnitData {
		if _, ok := d.Values[f.Name]; !ok {
			return fmt.Errorf("%w: declared field %q has no value", ErrUndeclared, f.Name)
		}
	}
	return nil
}

// Plan is what to write for a unit's data. Env maps a bootenv target to
// the variables to set in it; Files and Raw are in manifest order.
type Plan struct {
	Env   map[string]map[string]string
	Files []File
	Raw   []Raw
}

// File is a file's whole content, in the filesystem on Target.
type File struct {
	Field  string
	Target string
	Path   string
	Data   []byte
}

// Raw is bytes at Offset of Target; len(Data) is the declared size.
type Raw struct {
	Field  string
	Target string
	Offset uint64
	Data   []byte
}

// Apply checks d (Check) and returns what to write. Two fields that go to
// the same variable, file or overlapping raw range are refused: the
// outcome would depend on the order of writes.
func Apply(d *Data, m *bundle.Manifest, hw Hardware) (*Plan, error) {
	if err := m.ValidateUnitData(); err != nil {
		return nil, err
	}
	if err := Check(d, m, hw); err != nil {
		return nil, err
	}
	p := &Plan{Env: map[string]map[string]string{}}
	files := map[[2]string]string{}
	for _, f := range m.UnitData {
		v := d.Values[f.Name]
		for _, to := range f.To {
			switch to.Type {
			case bundle.UnitToEnv:
				env := p.Env[to.Target]
				if env == nil {
					env = map[string]string{}
					p.Env[to.Target] = env
				}
				if _, dup := env[to.Variable]; dup {
					return nil, fmt.Errorf("%w: variable %q of %q is written by two fields", ErrValue, to.Variable, to.Target)
				}
				env[to.Variable] = v
			case bundle.UnitToFile:
				k := [2]string{to.Target, to.Path}
				if other, dup := files[k]; dup {
					return nil, fmt.Errorf("%w: file %s on %q is written by fields %q and %q", ErrValue, to.Path, to.Target, other, f.Name)
				}
				files[k] = f.Name
				p.Files = append(p.Files, File{Field: f.Name, Target: to.Target, Path: to.Path, Data: []byte(v)})
			case bundle.UnitToRaw:
				b, err := rawBytes(&f, &to, v)
				if err != nil {
					return nil, err
				}
				for _, r := range p.Raw {
					if r.Target == to.Target && r.Offset < to.Offset+to.Size && to.Offset < r.Offset+uint64(len(r.Data)) {
						return nil, fmt.Errorf("%w: raw bytes of fields %q and %q overlap on %q", ErrValue, r.Field, f.Name, to.Target)
					}
				}
				p.Raw = append(p.Raw, Raw{Field: f.Name, Target: to.Target, Offset: to.Offset, Data: b})
			}
		}
	}
	return p, nil
}

func rawBytes(f *bundle.UnitField, to *bundle.UnitDest, v string) ([]byte, error) {
	b := make([]byte, to.Size)
	switch to.Encoding {
	case bundle.RawMACBinary:
		hw, err := net.ParseMAC(v)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("%w: field %q: %q is not a MAC address", ErrValue, f.Name, clip(v))
		}
		copy(b, hw)
	default:
		if uint64(len(v)) > to.Size {
			return nil, fmt.Errorf("%w: field %q: %d bytes do not fit the %d reserved at offset %d of %q",
				ErrValue, f.Name, len(v), to.Size, to.Offset, to.Target)
		}
		copy(b, v)
	}
	return b, nil
}
