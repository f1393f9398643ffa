// Package config reads a factory station's configuration file (YAML,
// docs/station.md): the line's interface and addresses, the identity
// pools, which boards and bundles the line makes, the database, the
// factory CA and the station key. Everything is checked when the file is
// read; unknown keys are errors.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/station/identity"
)

// Config is the station's configuration file.
type Config struct {
	// Name identifies the station in the records (default: the host name).
	Name string `yaml:"name"`
	// Listen is the HTTP address: the protocol, bundles, boot files and
	// the line page (default ":80").
	Listen string `yaml:"listen"`
	// URL is how units reach the station, given to them by DHCP (default:
	// http:// the interface's address and Listen's port).
	URL string `yaml:"url"`
	// TLS, optional, serves HTTPS instead of HTTP.
	TLS *TLS `yaml:"tls"`
	// Interface is the line's own network interface: DHCP and TFTP run
	// there. Empty: no network boot services (units find the station by
	// URL).
	Interface  string   `yaml:"interface"`
	DHCP       *DHCP    `yaml:"dhcp"`
	Boot       Boot     `yaml:"boot"`
	Serials    Serials  `yaml:"serials"`
	MACs       *MACs    `yaml:"macs"`
	Boards     []string `yaml:"boards"`
	Bundles    Bundles  `yaml:"bundles"`
	Database   string   `yaml:"database"`
	FactoryCA  *CA      `yaml:"factory_ca"`
	StationKey string   `yaml:"station_key"`

	dir string
}

// TLS names the certificate and key the station serves HTTPS with.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// DHCP configures the DHCP server on Interface.
type DHCP struct {
	Range  string   `yaml:"range"` // "198.18.91.100-198.18.91.199", in the interface's subnet
	Lease  Duration `yaml:"lease"` // default 1h
	Router string   `yaml:"router"`
	DNS    []string `yaml:"dns"`
	// Probe is how long to listen for another DHCP server before serving
	// (default 3s).
	Probe Duration `yaml:"probe"`
	// Leases is the leases file (default: next to the database, or in
	// the config's folder).
	Leases string `yaml:"leases"`
}

// Boot names the files network boot clients get (docs/station.md).
type Boot struct {
	// TFTPRoot is served by TFTP and at /boot/ over HTTP.
	TFTPRoot string `yaml:"tftp_root"`
	BIOS     string `yaml:"bios"`
	EFI64    string `yaml:"efi64"`
	EFIArm64 string `yaml:"efi_arm64"`
	UBoot    string `yaml:"uboot"`
	// IPXEScript is a file in TFTPRoot that iPXE gets by HTTP.
	IPXEScript string `yaml:"ipxe_script"`
}

// Serials configures serial numbers.
type Serials struct {
	Format string `yaml:"format"` // fmt format with one integer verb, e.g. "LB-%06d"
	Range  string `yaml:"range"`  // "1-99999"
	// Scanned: serials scanned by an operator (POST /api/v1/serials) are
	// given first; the range, if any, after them.
	Scanned bool `yaml:"scanned"`
}

// MACs configures the MAC pool.
type MACs struct {
	Pool    string `yaml:"pool"` // "02:00:00:00:10:00-02:00:00:00:1f:ff"
	PerUnit int    `yaml:"per_unit"`
}

// Bundles lists the bundles the station serves and what it allows.
type Bundles struct {
	Files []string `yaml:"files"`
	// Keys is the bundle trust store: the station serves only bundles it
	// can verify.
	Keys  []string `yaml:"keys"`
	Allow []Allow  `yaml:"allow"`
}

// Allow is one rule: a bundle is allowed when its product is Product, its
// version matches one of Versions (path.Match globs; none means any) and
// its compatible list names one of Compatible (none means any).
type Allow struct {
	Product    string   `yaml:"product"`
	Versions   []string `yaml:"versions"`
	Compatible []string `yaml:"compatible"`
}

// CA names the factory CA.
type CA struct {
	Cert     string   `yaml:"cert"`
	Key      string   `yaml:"key"`
	Validity Duration `yaml:"validity"` // default 20 years
}

// Duration is a time.Duration written as "90s", "1h", "8760h".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Load reads and checks a configuration file. Relative paths in it are
// taken from the file's folder.
func Load(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b, filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// Parse reads a configuration; relative paths are taken from dir.
func Parse(b []byte, dir string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	c.dir = dir
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Path resolves a path of the file against its folder.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Listen == "" {
		c.Listen = ":80"
	}
	if c.Database == "" {
		c.Database = "line.db"
	}
	if c.DHCP != nil {
		if c.DHCP.Lease == 0 {
			c.DHCP.Lease = Duration(time.Hour)
		}
		if c.DHCP.Probe == 0 {
			c.DHCP.Probe = Duration(3 * time.Second)
		}
		if c.DHCP.Leases == "" {
			c.DHCP.Leases = "leases.json"
			if !c.Postgres() {
				c.DHCP.Leases = filepath.Join(filepath.Dir(c.Database), "leases.json")
			}
		}
	}
	if c.MACs != nil && c.MACs.PerUnit == 0 {
		c.MACs.PerUnit = 1
	}
}

// Postgres reports whether Database is a PostgreSQL connection string
// rather than an SQLite file.
func (c *Config) Postgres() bool {
	d := c.Database
	return strings.HasPrefix(d, "postgres://") || strings.HasPrefix(d, "postgresql://") || strings.Contains(d, "host=") || strings.Contains(d, "dbname=")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if !identity.SerialOK(c.Name) {
		return fmt.Errorf("name %q: want 1 to 64 of A-Z a-z 0-9 . _ -", c.Name)
	}
	if c.Serials.Format == "" && !c.Serials.Scanned {
		return fmt.Errorf("serials: give a format and range, or scanned: true")
	}
	if c.Serials.Format != "" {
		if _, err := c.SerialRange(); err != nil {
			return err
		}
	}
	if c.MACs != nil {
		if _, err := c.MACPool(); err != nil {
			return err
		}
	}
	if len(c.Boards) == 0 {
		return fmt.Errorf("boards: name the boards this line makes (name or name:revision)")
	}
	if len(c.Bundles.Files) == 0 {
		return fmt.Errorf("bundles: files: name at least one bundle")
	}
	if len(c.Bundles.Keys) == 0 {
		return fmt.Errorf("bundles: keys: give the bundle trust store (the station serves only bundles it can verify)")
	}
	if len(c.Bundles.Allow) == 0 {
		return fmt.Errorf("bundles: allow: give at least one rule (product, versions, compatible)")
	}
	for i, a := range c.Bundles.Allow {
		if a.Product == "" {
			return fmt.Errorf("bundles: allow %d: no product", i+1)
		}
		for _, v := range a.Versions {
			if _, err := path.Match(v, ""); err != nil {
				return fmt.Errorf("bundles: allow %d: version pattern %q: %w", i+1, v, err)
			}
		}
	}
	if c.StationKey == "" {
		return fmt.Errorf("station_key: give the station's key (lifeboat-station keygen makes one)")
	}
	if c.FactoryCA != nil && (c.FactoryCA.Cert == "" || c.FactoryCA.Key == "") {
		return fmt.Errorf("factory_ca: give cert and key")
	}
	if c.TLS != nil && (c.TLS.Cert == "" || c.TLS.Key == "") {
		return fmt.Errorf("tls: give cert and key")
	}
	if c.DHCP != nil {
		if c.Interface == "" {
			return fmt.Errorf("dhcp: needs interface")
		}
		if _, _, err := c.DHCPRange(); err != nil {
			return err
		}
		if c.DHCP.Router != "" {
			if _, err := netip.ParseAddr(c.DHCP.Router); err != nil {
				return fmt.Errorf("dhcp: router: %w", err)
			}
		}
		for _, d := range c.DHCP.DNS {
			if _, err := netip.ParseAddr(d); err != nil {
				return fmt.Errorf("dhcp: dns: %w", err)
			}
		}
	}
	return nil
}

// SerialRange returns the configured range (Format "" means none).
func (c *Config) SerialRange() (*identity.SerialRange, error) {
	if c.Serials.Format == "" {
		return nil, nil
	}
	first, last, err := identity.ParseRange(c.Serials.Range)
	if err != nil {
		return nil, fmt.Errorf("serials: %w", err)
	}
	r := &identity.SerialRange{Format: c.Serials.Format, First: first, Last: last}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("serials: %w", err)
	}
	return r, nil
}

// MACPool returns the configured pool, or nil.
func (c *Config) MACPool() (*identity.MACPool, error) {
	if c.MACs == nil {
		return nil, nil
	}
	p, err := identity.ParseMACPool(c.MACs.Pool, c.MACs.PerUnit)
	if err != nil {
		return nil, fmt.Errorf("macs: %w", err)
	}
	return &p, nil
}

// DHCPRange returns the first and last address of the DHCP range.
func (c *Config) DHCPRange() (netip.Addr, netip.Addr, error) {
	a, b, ok := strings.Cut(c.DHCP.Range, "-")
	if !ok {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("dhcp: range %q: want FIRST-LAST", c.DHCP.Range)
	}
	first, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil || !first.Is4() {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("dhcp: range %q: bad first address", c.DHCP.Range)
	}
	last, err := netip.ParseAddr(strings.TrimSpace(b))
	if err != nil || !last.Is4() || last.Less(first) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("dhcp: range %q: bad last address", c.DHCP.Range)
	}
	return first, last, nil
}

// Allowed reports whether the configuration allows the bundle with
// manifest m; the error says why not.
func (c *Config) Allowed(m *bundle.Manifest) error {
	for _, a := range c.Bundles.Allow {
		if a.Product != m.Product {
			continue
		}
		if len(a.Versions) > 0 && !anyMatch(a.Versions, m.Version) {
			continue
		}
		if len(a.Compatible) > 0 && !intersects(a.Compatible, m.Compatible) {
			continue
		}
		return nil
	}
	return fmt.Errorf("bundle %s %s (compatible %s) is not allowed by this station's bundles: allow rules",
		m.Product, m.Version, strings.Join(m.Compatible, ","))
}

func anyMatch(globs []string, v string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, v); ok {
			return true
		}
	}
	return false
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}
