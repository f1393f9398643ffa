package network

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// WriteResolvConf writes a resolv.conf with the given name servers, domain
// and search list to path. It replaces the file atomically (temp file and
// rename in the same directory) so a reader never sees half of it.
func WriteResolvConf(path string, servers []netip.Addr, domain string, search []string) error {
	var b bytes.Buffer
	if domain != "" {
		fmt.Fprintf(&b, "domain %s\n", domain)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("network: resolv.conf: %w", err)
	}
	f, err := os.CreateTemp(dir, ".resolv.conf-")
	if err != nil {
		return fmt.Errorf("network: resolv.conf: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("network: resolv.conf: %w", err)
	}
	return nil
}

// writeResolv writes cfg.ResolvConf from the configured interfaces.
func writeResolv(cfg *Config, r *Result) error {
	if cfg.ResolvConf == "" {
		return nil
	}
	servers := r.DNS()
	if len(servers) == 0 {
		return nil
	}
	var domain string
	var search []string
	for _, i := range r.Configured() {
		if domain == "" {
			domain = i.Domain
		}
		if len(search) == 0 {
			search = i.Search
		}
	}
	if err := WriteResolvConf(cfg.ResolvConf, servers, domain, search); err != nil {
		return err
	}
	cfg.logf("network: wrote %s (nameservers %v)", cfg.ResolvConf, servers)
	return nil
}
