package pid1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-updater/lifeboat/kmod"
	"golang.org/x/sys/unix"
)

// ErrModuleNotFound reports a module that is neither in the image's
// modules.dep nor built into the kernel.
var ErrModuleNotFound = errors.New("pid1: kernel module not found")

// LoadModules loads the named kernel modules, with their dependencies, from
// /lib/modules/$(uname -r) as listed in its modules.dep. No names means
// every module there: the image carries only what its board needs. It
// returns the names that loaded (or were built in) and logs the others; a
// module that fails does not stop the rest.
//
// The image's modules.dep is the trimmed one the initramfs package writes:
// plain .ko files named as the kernel names them, so loading is a walk of
// that file and one finit_module(2) per module. (u-root's kmodule does the
// same and also decompresses .ko.xz/.gz/.zst, which links three
// decompressors into /init that the rescue never uses.)
func LoadModules(log Logger, names []string) []string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		log.Printf("modules: uname: %v", err)
		return nil
	}
	kver := unix.ByteSliceToString(u.Release[:])
	dir := filepath.Join(ModulesDir, kver)
	dep, err := kmod.ReadDep(dir)
	if errors.Is(err, kmod.ErrNoDep) {
		if len(names) > 0 {
			log.Printf("modules: no modules.dep in %s", dir)
		}
		return nil // an image without modules
	}
	if err != nil {
		log.Printf("modules: %v", err)
		return nil
	}
	if len(names) == 0 {
		names = dep.Order
	}
	builtin, err := kmod.ReadBuiltin(dir)
	if err != nil {
		log.Printf("modules: %v", err)
	}
	l := &moduleLoader{
		dir:     dir,
		dep:     dep,
		builtin: builtin,
		loaded:  map[string]error{},
		load:    finitModule,
	}
	var loaded, failed []string
	for _, n := range names {
		if err := l.Load(n); err != nil {
			log.Printf("module %s: %v", n, err)
			failed = append(failed, n)
			continue
		}
		loaded = append(loaded, n)
	}
	log.Printf("modules: %d loaded%s", len(loaded), joinList(" (failed: ", failed, ")"))
	return loaded
}

// moduleLoader loads modules and what they depend on, each once.
type moduleLoader struct {
	dir     string
	dep     *kmod.Dep
	builtin map[string]bool
	loaded  map[string]error // name -> the outcome of loading it
	// load loads one module file; finitModule in the rescue.
	load func(path string) error
}

// Load loads the module name after its dependencies (depth first, so the
// order of a modules.dep line does not matter). A module the kernel has
// already, loaded or built in, is no error.
func (l *moduleLoader) Load(name string) error {
	return l.loadName(kmod.Name(name), nil)
}

func (l *moduleLoader) loadName(name string, path []string) error {
	if err, done := l.loaded[name]; done {
		return err
	}
	for _, p := range path {
		if p == name {
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(path, name), " -> "))
		}
	}
	file, ok := l.dep.Files[name]
	if !ok {
		if l.builtin[name] {
			l.loaded[name] = nil
			return nil
		}
		err := fmt.Errorf("%w: %s", ErrModuleNotFound, name)
		l.loaded[name] = err
		return err
	}
	for _, d := range l.dep.Needs(name) {
		if err := l.loadName(d, append(path, name)); err != nil {
			err = fmt.Errorf("needs %s: %w", d, err)
			l.loaded[name] = err
			return err
		}
	}
	err := l.load(filepath.Join(l.dir, file))
	if errors.Is(err, unix.EEXIST) {
		err = nil
	}
	l.loaded[name] = err
	return err
}

// finitModule loads a module file with finit_module(2): the kernel reads
// the file itself, so it is never copied into the rescue's memory.
func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return &os.PathError{Op: "finit_module", Path: path, Err: err}
	}
	return nil
}

func joinList(pre string, s []string, post string) string {
	if len(s) == 0 {
		return ""
	}
	return pre + strings.Join(s, " ") + post
}
