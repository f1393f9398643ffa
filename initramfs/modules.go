package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lifeboat-updater/lifeboat/kmod"
)

// ErrModuleNotFound reports a requested kernel module that is neither a
// loadable module nor built into the kernel.
var ErrModuleNotFound = errors.New("initramfs: kernel module not found")

// ErrNoModulesDep reports a kernel module directory without modules.dep: run
// `depmod -b ROOT KVER` first (Debian's kernel packages ship none).
var ErrNoModulesDep = errors.New("initramfs: no modules.dep (run depmod -b)")

// moduleIndex is what depmod wrote about one kernel's modules.
type moduleIndex struct {
	deps     map[string][]string // module file (relative) -> files it needs
	byName   map[string]string   // module name -> module file
	builtin  map[string]bool     // names of modules built into the kernel
	softPre  map[string][]string // module name -> names to load before it
	softPost map[string][]string // module name -> names to load after it
	aliases  map[string][]string // literal alias -> module names
}

// loadModuleIndex reads modules.dep, modules.builtin, modules.softdep and the
// literal entries of modules.alias in dir (lib/modules/KVER).
func loadModuleIndex(dir string) (*moduleIndex, error) {
	ix := &moduleIndex{
		softPre:  map[string][]string{},
		softPost: map[string][]string{},
		aliases:  map[string][]string{},
	}
	dep, err := kmod.ReadDep(dir)
	if errors.Is(err, kmod.ErrNoDep) {
		return nil, fmt.Errorf("%w: %s", ErrNoModulesDep, dir)
	}
	if err != nil {
		return nil, err
	}
	ix.deps, ix.byName = dep.Deps, dep.Files
	if ix.builtin, err = kmod.ReadBuiltin(dir); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.softdep")); err == nil {
		ix.parseSoftdep(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.alias")); err == nil {
		for _, line := range lines(b) {
			f := strings.Fields(line)
			// Only literal aliases name soft dependencies ("crypto-crc32c");
			// the wildcard ones are for hardware IDs.
			if len(f) != 3 || f[0] != "alias" || strings.ContainsAny(f[1], "*?[") {
				continue
			}
			ix.aliases[f[1]] = append(ix.aliases[f[1]], kmod.Name(f[2]))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return ix, nil
}

// parseSoftdep reads lines like "softdep ext4 pre: crypto-crc32c post: x".
func (ix *moduleIndex) parseSoftdep(b []byte) {
	for _, line := range lines(b) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "softdep" {
			continue
		}
		mod := kmod.Name(f[1])
		list := &ix.softPre // modprobe treats names before any "pre:" as pre
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				list = &ix.softPre
			case "post:":
				list = &ix.softPost
			default:
				(*list)[mod] = append((*list)[mod], w)
			}
		}
	}
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// moduleSet is the part of a kernel's modules an image carries.
type moduleSet struct {
	// Files are the module files (relative to lib/modules/KVER), sorted.
	Files []string
	// Deps is the trimmed modules.dep: every file in Files with what it
	// needs, soft "pre" dependencies folded in as hard ones.
	Deps map[string][]string
	// Builtin are the requested names the kernel has built in.
	Builtin []string
	// Skipped are soft dependencies no module provides (they are optional).
	Skipped []string
}

// resolve picks the module files that names need: the modules themselves,
// what modules.dep says they depend on, and their soft dependencies.
//
// The rescue's loader reads modules.dep but not modules.softdep, so a soft "pre"
// dependency (ext4 wants a crc32c implementation first) becomes a hard one in
// the trimmed modules.dep, unless that would make a cycle. When an alias has
// several providers, the portable "_generic" one is preferred: the
// CPU-specific ones fail to load on CPUs that lack their instructions.
func (ix *moduleIndex) resolve(names []string) (*moduleSet, error) {
	set := &moduleSet{Deps: map[string][]string{}}
	var errs []error
	var add func(file string)
	add = func(file string) {
		if _, ok := set.Deps[file]; ok {
			return
		}
		set.Deps[file] = slices.Clone(ix.deps[file])
		for _, d := range ix.deps[file] {
			add(d)
		}
		mod := kmod.Name(file)
		for _, soft := range ix.softPre[mod] {
			for _, f := range ix.provide(soft) {
				add(f)
				if !set.reaches(f, file) && !slices.Contains(set.Deps[file], f) {
					set.Deps[file] = append(set.Deps[file], f)
				}
			}
			if len(ix.provide(soft)) == 0 && !ix.builtin[kmod.Name(soft)] {
				set.Skipped = append(set.Skipped, soft)
			}
		}
		for _, soft := range ix.softPost[mod] {
			for _, f := range ix.provide(soft) {
				add(f)
			}
		}
	}
	for _, name := range names {
		n := kmod.Name(name)
		switch files := ix.provide(n); {
		case len(files) > 0:
			for _, f := range files {
				add(f)
			}
		case ix.builtin[n]:
			set.Builtin = append(set.Builtin, name)
		default:
			errs = append(errs, fmt.Errorf("%w: %s", ErrModuleNotFound, name))
		}
	}
	for f := range set.Deps {
		set.Files = append(set.Files, f)
	}
	slices.Sort(set.Files)
	slices.Sort(set.Skipped)
	set.Skipped = slices.Compact(set.Skipped)
	return set, errors.Join(errs...)
}

// provide returns the module files that satisfy name: the module of that
// name, else the modules an alias of that name points to.
func (ix *moduleIndex) provide(name string) []string {
	if f, ok := ix.byName[kmod.Name(name)]; ok {
		return []string{f}
	}
	mods := ix.aliases[name]
	var generic []string
	for _, m := range mods {
		if strings.HasSuffix(m, "_generic") {
			generic = append(generic, m)
		}
	}
	if len(generic) > 0 {
		mods = generic
	}
	var files []string
	for _, m := range mods {
		if f, ok := ix.byName[m]; ok && !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	return files
}

// reaches reports whether from depends, directly or not, on to.
func (s *moduleSet) reaches(from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(f string) bool {
		if f == to {
			return true
		}
		if seen[f] {
			return false
		}
		seen[f] = true
		for _, d := range s.Deps[f] {
			if walk(d) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// imagePath is where a module file goes in the image: its own directory,
// named as the kernel names the module ("nls_iso8859-1.ko" becomes
// "nls_iso8859_1.ko"), so that a module's file name and its name in
// modules.dep never disagree for a loader that looks files up by name
// (u-root's kmodule tries a name with every '-' or every '_' and misses
// files that mix both); the file name means nothing to the kernel itself.
func imagePath(file string) string {
	dir, base := path.Split(file)
	ext := ""
	if i := strings.Index(base, ".ko"); i >= 0 {
		ext = base[i:]
	}
	return dir + kmod.Name(base) + ext
}

// depFile renders the trimmed modules.dep, with image paths.
func (s *moduleSet) depFile() []byte {
	var b bytes.Buffer
	for _, f := range s.Files {
		b.WriteString(imagePath(f))
		b.WriteString(":")
		for _, d := range s.Deps[f] {
			b.WriteString(" ")
			b.WriteString(imagePath(d))
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// builtinFile renders modules.builtin with image paths.
func builtinFile(b []byte) []byte {
	var out bytes.Buffer
	for _, line := range lines(b) {
		out.WriteString(imagePath(line))
		out.WriteString("\n")
	}
	return out.Bytes()
}
