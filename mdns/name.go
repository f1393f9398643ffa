package mdns

import (
	"os"
	"path/filepath"
	"strings"
)

// HostName makes the device's mDNS name from its board name and serial
// number: "<board>-<serial>.local", in lower case, with every character
// that is not a letter, a digit or a dash made a dash, cut to the 63
// bytes a DNS label may have (the serial's end kept, where serials differ).
// HostName("qemu-x86_64", "525400123456") is
// "qemu-x86-64-525400123456.local".
func HostName(board, serial string) string {
	clean := func(s string) string {
		var b strings.Builder
		dash := true // no dash at the start, none doubled
		for _, r := range strings.ToLower(s) {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
				dash = false
			} else if !dash {
				b.WriteByte('-')
				dash = true
			}
		}
		return strings.TrimRight(b.String(), "-")
	}
	b, s := clean(board), clean(serial)
	if b == "" {
		b = "lifeboat"
	}
	label := b
	if s != "" {
		if len(b)+1+len(s) > 63 {
			if len(s) > 40 {
				s = strings.TrimLeft(s[len(s)-40:], "-")
			}
			b = strings.TrimRight(b[:min(len(b), 62-len(s))], "-")
		}
		label = b + "-" + s
	}
	return label + ".local"
}

// Serial returns the serial number the firmware gives the board, read
// under root ("/" on a device): the device tree's serial-number, else the
// DMI product or board serial. It returns "" when none is there or the
// firmware fills in a placeholder; the rescue then uses the first network
// interface's MAC address, as 12 hex digits.
func Serial(root string) string {
	for _, p := range []string{
		"proc/device-tree/serial-number",
		"sys/firmware/devicetree/base/serial-number",
		"sys/class/dmi/id/product_serial",
		"sys/class/dmi/id/board_serial",
	} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
		if !placeholder(s) {
			return s
		}
	}
	return ""
}

// placeholder reports a serial number that is no serial number: what
// firmware writes when nobody filled the field in.
func placeholder(s string) bool {
	if strings.Trim(s, "0 .-") == "" {
		return true
	}
	switch strings.ToLower(s) {
	case "not specified", "to be filled by o.e.m.", "default string", "system serial number",
		"none", "n/a", "unknown", "123456789", "0123456789":
		return true
	}
	return false
}
