//go:build !linux

package mtd

import "fmt"

// Dev is an MTD character device; only Linux has them.
type Dev struct{ Device }

// Open fails with ErrUnsupported: MTD devices need Linux.
func Open(name string, write bool) (*Dev, error) {
	return nil, fmt.Errorf("%w: open %s", ErrUnsupported, name)
}

// Sync does nothing.
func (d *Dev) Sync() error { return nil }

// Close does nothing.
func (d *Dev) Close() error { return nil }

// Path is empty: there are no MTD devices here.
func (d *Dev) Path() string { return "" }
