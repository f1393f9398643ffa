// Package layout holds the picture of docs/design.md, "Who may import
// whom", against the code: its test fails when a package imports one on a
// floor above it, or when a package stands on no floor. It has no code
// of its own beyond reading that picture.
package layout

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Floors maps a folder (module-relative, "handlers") to its floor; a
// folder's subpackages stand on its floor unless placed themselves.
type Floors map[string]int

// Parse reads the "```floors" block of a markdown page: lines
// "N: folder folder ...".
func Parse(r io.Reader) (Floors, error) {
	f := Floors{}
	sc := bufio.NewScanner(r)
	in := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```floors":
			in = true
			continue
		case in && line == "```":
			if len(f) == 0 {
				return nil, fmt.Errorf("line %d: empty floors block", n)
			}
			return f, nil
		case !in || line == "":
			continue
		}
		num, rest, ok := strings.Cut(line, ":")
		floor, err := strconv.Atoi(strings.TrimSpace(num))
		if !ok || err != nil || floor < 1 {
			return nil, fmt.Errorf("line %d: %q, want \"N: folder folder ...\"", n, line)
		}
		for _, dir := range strings.Fields(rest) {
			if _, dup := f[dir]; dup {
				return nil, fmt.Errorf("line %d: %s placed twice", n, dir)
			}
			f[dir] = floor
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no ```floors block")
}

// Place returns the folder that places pkg (module-relative) and its
// floor: pkg itself, else its nearest placed parent.
func (f Floors) Place(pkg string) (dir string, floor int, ok bool) {
	for p := pkg; p != "." && p != ""; {
		if n, ok := f[p]; ok {
			return p, n, true
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "", 0, false
}

// Check says what is wrong with pkg importing imp: nothing when imp is
// on a lower floor, or placed by the same folder as pkg.
func (f Floors) Check(pkg, imp string) error {
	pd, pf, ok := f.Place(pkg)
	if !ok {
		return fmt.Errorf("%s stands on no floor", pkg)
	}
	id, inf, ok := f.Place(imp)
	if !ok {
		return fmt.Errorf("%s stands on no floor", imp)
	}
	if pd == id || inf < pf {
		return nil
	}
	return fmt.Errorf("%s (floor %d) imports %s (floor %d)", pkg, pf, imp, inf)
}
