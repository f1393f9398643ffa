package bundle

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateUnitData(t *testing.T) {
	env := UnitDest{Type: UnitToEnv, Target: "uboot", Variable: "serial#"}
	ok := UnitField{Name: "serial", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{env}}
	for _, tc := range []struct {
		name string
		f    []UnitField
		want string // "" means valid
	}{
		{"good", []UnitField{ok}, ""},
		{"mac", []UnitField{{Name: "mac1", From: UnitFromMAC, Index: 1, Format: UnitFormatMAC, To: []UnitDest{
			{Type: UnitToEnv, Target: "uboot", Variable: "eth1addr"}, {Type: UnitToRaw, Target: "disk", Offset: 64, Size: 6, Encoding: RawMACBinary}}}}, ""},
		{"file", []UnitField{{Name: "cert", From: UnitFromCertificate, Format: UnitFormatPEM, To: []UnitDest{{Type: UnitToFile, Target: "boot", Path: "a/b.crt"}}}}, ""},
		{"twice", []UnitField{ok, ok}, "declared twice"},
		{"bad name", []UnitField{{Name: "Serial!", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{env}}}, "name must match"},
		{"bad from", []UnitField{{Name: "x", From: "root_password", Format: UnitFormatText, To: []UnitDest{env}}}, "from"},
		{"bad format", []UnitField{{Name: "x", From: UnitFromSerial, Format: "anything", To: []UnitDest{env}}}, "format"},
		{"bad pattern", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, Pattern: "(", To: []UnitDest{env}}}, "pattern"},
		{"no destination", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial}}, "no destination"},
		{"pem in env", []UnitField{{Name: "x", From: UnitFromPrivateKey, Format: UnitFormatPEM, To: []UnitDest{env}}}, "PEM"},
		{"path escapes", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToFile, Target: "boot", Path: "../x"}}}}, "bad file path"},
		{"absolute path", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToFile, Target: "boot", Path: "/etc/x"}}}}, "bad file path"},
		{"raw no size", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToRaw, Target: "disk"}}}}, "size"},
		{"raw huge", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToRaw, Target: "disk", Size: 1 << 30}}}}, "raw size"},
		{"mac-binary of serial", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToRaw, Target: "disk", Size: 6, Encoding: RawMACBinary}}}}, "mac-binary"},
		{"variable with =", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToEnv, Target: "u", Variable: "a=b"}}}}, "variable"},
		{"no target", []UnitField{{Name: "x", From: UnitFromSerial, Format: UnitFormatSerial, To: []UnitDest{{Type: UnitToEnv, Variable: "a"}}}}, "no target"},
		{"index on serial", []UnitField{{Name: "x", From: UnitFromSerial, Index: 2, Format: UnitFormatSerial, To: []UnitDest{env}}}, "index"},
	} {
		m := Manifest{UnitData: tc.f}
		err := m.ValidateUnitData()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: ValidateUnitData() = %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ValidateUnitData() = %v, want ErrFormat with %q", tc.name, err, tc.want)
		}
	}
}
