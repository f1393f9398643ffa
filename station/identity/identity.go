// Package identity is what makes one factory unit distinct: a serial number
// from a range (or one an operator scanned), MAC addresses from a pool, and
// optionally a key pair with a certificate signed by the factory CA. It
// holds the pure parts (formats, ranges, certificates); the station's store
// allocates durably.
package identity

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Identity is what a unit is given.
type Identity struct {
	Serial string   `json:"serial"`
	MACs   []string `json:"macs,omitempty"`
	// Certificate and PrivateKey (PEM) are the unit's own credentials,
	// when the station has a factory CA.
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
}

// ErrExhausted means a serial range or MAC pool has nothing left to give,
// or no scanned serial is waiting. Nothing was handed out.
var ErrExhausted = errors.New("identity: exhausted")

// SerialRange is a range of serial numbers [First, Last], each written with
// Format: a fmt format with exactly one integer verb, e.g. "LB-%06d".
type SerialRange struct {
	Format      string
	First, Last uint64
}

var verbRE = regexp.MustCompile(`%[-+# 0]*[0-9]*[dxXob]`)

// Validate checks the format and the range.
func (r SerialRange) Validate() error {
	if strings.Count(strings.ReplaceAll(r.Format, "%%", ""), "%") != 1 || len(verbRE.FindAllString(r.Format, -1)) != 1 {
		return fmt.Errorf("serial format %q: want exactly one integer verb such as %%06d", r.Format)
	}
	if r.First > r.Last {
		return fmt.Errorf("serial range %d-%d is empty", r.First, r.Last)
	}
	for _, n := range []uint64{r.First, r.Last} {
		if s := r.Serial(n); !SerialOK(s) {
			return fmt.Errorf("serial format %q makes %q: want 1 to 64 of A-Z a-z 0-9 . _ -", r.Format, s)
		}
	}
	return nil
}

// Serial formats number n.
func (r SerialRange) Serial(n uint64) string { return fmt.Sprintf(r.Format, n) }

// Name identifies the range in the store: two stations with the same range
// share its counter.
func (r SerialRange) Name() string {
	return fmt.Sprintf("%s %d-%d", r.Format, r.First, r.Last)
}

var serialRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// SerialOK reports whether s may be a serial number: 1 to 64 characters of
// A-Z a-z 0-9 . _ - (it becomes file names, bootloader variables, CSV).
func SerialOK(s string) bool { return serialRE.MatchString(s) }

// MACPool is a range of MAC addresses [First, Last] as 48-bit numbers;
// each unit gets PerUnit consecutive ones.
type MACPool struct {
	First, Last uint64
	PerUnit     int
}

// ParseMACPool parses "02:00:00:00:10:00-02:00:00:00:1f:ff".
func ParseMACPool(s string, perUnit int) (MACPool, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return MACPool{}, fmt.Errorf("MAC pool %q: want FIRST-LAST", s)
	}
	first, err := ParseMAC(strings.TrimSpace(a))
	if err != nil {
		return MACPool{}, err
	}
	last, err := ParseMAC(strings.TrimSpace(b))
	if err != nil {
		return MACPool{}, err
	}
	p := MACPool{First: first, Last: last, PerUnit: perUnit}
	return p, p.Validate()
}

// Validate checks the pool.
func (p MACPool) Validate() error {
	if p.PerUnit < 1 || p.PerUnit > 64 {
		return fmt.Errorf("MACs per unit %d: want 1 to 64", p.PerUnit)
	}
	if p.First > p.Last || p.Last >= 1<<48 {
		return fmt.Errorf("MAC pool %s-%s is empty", FormatMAC(p.First), FormatMAC(p.Last))
	}
	if p.First>>40&1 != 0 || p.Last>>40&1 != 0 || p.First>>40 != p.Last>>40 {
		// Crossing into another first octet could pass a multicast one.
		return fmt.Errorf("MAC pool %s-%s: want unicast addresses with one first octet", FormatMAC(p.First), FormatMAC(p.Last))
	}
	return nil
}

// Units is how many units the pool serves.
func (p MACPool) Units() uint64 { return (p.Last - p.First + 1) / uint64(p.PerUnit) }

// Block returns the MACs of the pool's n-th unit (0-based).
func (p MACPool) Block(n uint64) []string {
	out := make([]string, p.PerUnit)
	for i := range out {
		out[i] = FormatMAC(p.First + n*uint64(p.PerUnit) + uint64(i))
	}
	return out
}

// Name identifies the pool in the store.
func (p MACPool) Name() string {
	return fmt.Sprintf("%s-%s/%d", FormatMAC(p.First), FormatMAC(p.Last), p.PerUnit)
}

// ParseMAC parses a 48-bit MAC address into a number.
func ParseMAC(s string) (uint64, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return 0, fmt.Errorf("bad MAC address %q", s)
	}
	var v uint64
	for _, b := range hw {
		v = v<<8 | uint64(b)
	}
	return v, nil
}

// FormatMAC writes a 48-bit number as a MAC address, lowercase.
func FormatMAC(v uint64) string {
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return net.HardwareAddr(b[:]).String()
}

// ParseRange parses "1000-1999" (decimal).
func ParseRange(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("range %q: want FIRST-LAST", s)
	}
	first, err := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("range %q: %w", s, err)
	}
	last, err := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("range %q: %w", s, err)
	}
	return first, last, nil
}
