// Package kmod reads what depmod writes about a kernel's modules, in
// lib/modules/KVER: modules.dep (the file of each loadable module and the
// files it needs) and modules.builtin (the modules built into the kernel).
// The rescue's module loader (package pid1), the rescue image builder
// (package initramfs) and the demo's production image share it.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrNoDep reports a module directory without modules.dep: run
// `depmod -b ROOT KVER` first (Debian's kernel packages ship none).
var ErrNoDep = errors.New("kmod: no modules.dep (run depmod -b)")

// ErrNotFound reports a module that is neither a loadable module nor
// built into the kernel.
var ErrNotFound = errors.New("kmod: kernel module not found")

// Name is the name the kernel knows a module, or its file, by: no
// directory, no .ko suffix (nor the .xz, .zst or .gz after it), '-'
// spelled '_' (the kernel treats both alike).
func Name(file string) string {
	base := path.Base(filepath.ToSlash(file))
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// Dep is a parsed modules.dep.
type Dep struct {
	// Deps maps each module file (relative to the module directory) to
	// the files it needs, as depmod listed them.
	Deps map[string][]string
	// Files maps a module's name to its file.
	Files map[string]string
	// Order is the module names in the file's order.
	Order []string
}

// ParseDep reads modules.dep: "file: needed needed ...", one module a
// line.
func ParseDep(r io.Reader) (*Dep, error) {
	d := &Dep{Deps: map[string][]string{}, Files: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		file, rest, ok := strings.Cut(sc.Text(), ":")
		file = strings.TrimSpace(file)
		if !ok || file == "" || strings.HasPrefix(file, "#") {
			continue
		}
		n := Name(file)
		if _, dup := d.Files[n]; !dup {
			d.Order = append(d.Order, n)
		}
		d.Files[n] = file
		d.Deps[file] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kmod: modules.dep: %w", err)
	}
	return d, nil
}

// ReadDep reads dir/modules.dep.
func ReadDep(dir string) (*Dep, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoDep, dir)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseDep(f)
}

// ReadBuiltin reads the names in dir/modules.builtin; a kernel without
// that file has none built in.
func ReadBuiltin(dir string) (map[string]bool, error) {
	m := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[Name(line)] = true
		}
	}
	return m, nil
}

// Needs returns the names of the modules the module called name needs.
func (d *Dep) Needs(name string) []string {
	var out []string
	for _, f := range d.Deps[d.Files[name]] {
		out = append(out, Name(f))
	}
	return out
}

// Resolve returns the module files that loading names needs, each after
// the files it needs, each once. Names in builtin are left out; a name
// that is neither a module nor built in is ErrNotFound.
func (d *Dep) Resolve(names []string, builtin map[string]bool) ([]string, error) {
	var order []string
	done := map[string]bool{}
	var visit func(file string, path []string) error
	visit = func(file string, path []string) error {
		if done[file] {
			return nil
		}
		for _, p := range path {
			if p == file {
				return fmt.Errorf("kmod: dependency cycle: %s", strings.Join(append(path, file), " -> "))
			}
		}
		for _, n := range d.Deps[file] {
			if err := visit(n, append(path, file)); err != nil {
				return err
			}
		}
		done[file] = true
		order = append(order, file)
		return nil
	}
	for _, n := range names {
		n = Name(n)
		file, ok := d.Files[n]
		if !ok {
			if builtin[n] {
				continue
			}
			return nil, fmt.Errorf("%w: %s", ErrNotFound, n)
		}
		if err := visit(file, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
