package bootenv

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseFWEnvConfig reads fw_env.config as U-Boot's tools do: per line a
// device, an offset, the env size, and optionally the sector (erase) size and
// the number of sectors; "#" starts a comment line or ends the fields. The
// offset is C-style (0x hex, leading 0 octal, else decimal, may be negative:
// from the end of a block device); sizes are hex with or without 0x, since
// the tools read them with %lx. One line is a single env, two a redundant
// pair. Unlike the tools, a line with too few or malformed fields, or a third
// line, is an error rather than ignored.
func ParseFWEnvConfig(r io.Reader) (Config, error) {
	cfg := Config{Type: UBoot}
	sc := bufio.NewScanner(r)
	for lineno := 1; sc.Scan(); lineno++ {
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if strings.HasPrefix(f, "#") {
				fields = fields[:i]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 {
			return Config{}, fmt.Errorf("%w: line %d: want device, offset and size", ErrConfig, lineno)
		}
		loc := Location{Path: fields[0]}
		off, err := parseCInt(fields[1])
		if err != nil {
			return Config{}, fmt.Errorf("%w: line %d: offset %q", ErrConfig, lineno, fields[1])
		}
		loc.Offset = off
		var nums [3]int64 // size, sector size, sectors
		for i, f := range fields[2:min(len(fields), 5)] {
			n, err := strconv.ParseUint(trimHexPrefix(f), 16, 63)
			if err != nil {
				return Config{}, fmt.Errorf("%w: line %d: %q is not hex", ErrConfig, lineno, f)
			}
			nums[i] = int64(n)
		}
		// A sixth field (libubootenv's disable-lock) is accepted and ignored.
		if nums[0] == 0 {
			return Config{}, fmt.Errorf("%w: line %d: size 0", ErrConfig, lineno)
		}
		if cfg.Size != 0 && cfg.Size != nums[0] {
			return Config{}, fmt.Errorf("%w: line %d: copies of unequal size", ErrConfig, lineno)
		}
		if len(cfg.Copies) == 2 {
			return Config{}, fmt.Errorf("%w: line %d: more than two copies", ErrConfig, lineno)
		}
		cfg.Size = nums[0]
		loc.SectorSize, loc.Sectors = nums[1], nums[2]
		cfg.Copies = append(cfg.Copies, loc)
	}
	if err := sc.Err(); err != nil {
		return Config{}, err
	}
	if len(cfg.Copies) == 0 {
		return Config{}, fmt.Errorf("%w: no device line", ErrConfig)
	}
	return cfg, nil
}

func trimHexPrefix(s string) string {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return s[2:]
	}
	return s
}

// parseCInt parses an integer as strtoll with base 0 does.
func parseCInt(s string) (int64, error) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" || s[0] == '-' || s[0] == '+' {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.ParseInt(s, base, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		n = -n
	}
	return n, nil
}
