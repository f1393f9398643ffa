package rescue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// LoadModules loads the named kernel modules, with their dependencies, from
// /lib/modules/$(uname -r) as listed in its modules.dep (u-root's kmodule).
// No names means every module there: the image carries only what its board
// needs. It returns the names that loaded (or were built in) and logs the
// others; a module that fails does not stop the rest.
func LoadModules(log Logger, names []string) []string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		log.Printf("modules: uname: %v", err)
		return nil
	}
	kver := unix.ByteSliceToString(u.Release[:])
	dir := filepath.Join(ModulesDir, kver)
	if len(names) == 0 {
		all, err := modulesIn(filepath.Join(dir, "modules.dep"))
		if errors.Is(err, os.ErrNotExist) {
			return nil // an image without modules
		}
		if err != nil {
			log.Printf("modules: %v", err)
			return nil
		}
		names = all
	}
	p, err := kmodule.NewProber(kmodule.ProbeOpts{KVer: kver})
	if err != nil {
		log.Printf("modules: %v", err)
		return nil
	}
	var loaded, failed []string
	for _, n := range names {
		if err := p.Probe(n, ""); err != nil {
			log.Printf("module %s: %v", n, err)
			failed = append(failed, n)
			continue
		}
		loaded = append(loaded, n)
	}
	log.Printf("modules: %d loaded%s", len(loaded), joinList(" (failed: ", failed, ")"))
	return loaded
}

func joinList(pre string, s []string, post string) string {
	if len(s) == 0 {
		return ""
	}
	return pre + strings.Join(s, " ") + post
}

// modulesIn lists the module names in a modules.dep file, in its order.
func modulesIn(depFile string) ([]string, error) {
	b, err := os.ReadFile(depFile)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		file, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		base := filepath.Base(file)
		if i := strings.Index(base, ".ko"); i >= 0 {
			base = base[:i]
		}
		names = append(names, strings.ReplaceAll(base, "-", "_"))
	}
	return names, nil
}
