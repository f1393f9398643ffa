package config

import (
	"strings"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

const base = `name: st1
station_key: station.key
serials: {format: "LB-%06d", range: 1-100}
macs: {pool: "02:00:00:00:00:00-02:00:00:00:00:ff", per_unit: 2}
boards: [qemu-x86_64]
bundles: {files: [os.lfb], keys: [keys], allow: [{product: demo-os, versions: ["1.*"], compatible: [qemu-x86_64]}]}
`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(base+"interface: eth1\ndhcp: {range: 10.77.0.100-10.77.0.200}\ndatabase: /var/lib/x/line.db\n"), "/etc/st")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":80" || c.DHCP.Leases != "/var/lib/x/leases.json" || c.Path("station.key") != "/etc/st/station.key" || c.Postgres() {
		t.Errorf("defaults: %+v %+v", c, c.DHCP)
	}
	for _, tc := range []struct{ extra, want string }{
		{"bogus: 1\n", "field bogus not found"},
		{"dhcp: {range: 10.77.0.100-10.77.0.200}\n", "dhcp: needs interface"},
		{"interface: e\ndhcp: {range: 10.77.0.200-10.77.0.100}\n", "bad last address"},
		{"interface: e\ndhcp: {range: x, lease: forever}\n", "time: invalid duration"},
		{"factory_ca: {cert: ca.crt}\n", "factory_ca: give cert and key"},
	} {
		if _, err := Parse([]byte(base+tc.extra), "."); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(+%q) = %v, want %q", tc.extra, err, tc.want)
		}
	}
	for _, tc := range []struct{ from, to, want string }{
		{`format: "LB-%06d"`, `format: "LB %06d"`, "serial format"},
		{"range: 1-100", "range: 100-1", "is empty"},
		{"per_unit: 2", "per_unit: 99", "MACs per unit"},
		{"boards: [qemu-x86_64]", "boards: []", "boards:"},
		{"keys: [keys]", "keys: []", "bundles: keys"},
		{"station_key: station.key", "station_key: \"\"", "station_key"},
		{"name: st1", "name: \"st 1\"", "name"},
		{`versions: ["1.*"]`, `versions: ["["]`, "version pattern"},
	} {
		cfg := strings.Replace(base, tc.from, tc.to, 1)
		if _, err := Parse([]byte(cfg), "."); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("with %q: %v, want %q", tc.to, err, tc.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	c, err := Parse([]byte(base), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m  bundle.Manifest
		ok bool
	}{
		{bundle.Manifest{Product: "demo-os", Version: "1.2", Compatible: []string{"qemu-x86_64", "other"}}, true},
		{bundle.Manifest{Product: "demo-os", Version: "2.0", Compatible: []string{"qemu-x86_64"}}, false},
		{bundle.Manifest{Product: "demo-os", Version: "1.2", Compatible: []string{"other"}}, false},
		{bundle.Manifest{Product: "evil-os", Version: "1.2", Compatible: []string{"qemu-x86_64"}}, false},
	} {
		if err := c.Allowed(&tc.m); (err == nil) != tc.ok {
			t.Errorf("Allowed(%s %s %v) = %v, want ok %v", tc.m.Product, tc.m.Version, tc.m.Compatible, err, tc.ok)
		}
	}
	for db, pg := range map[string]bool{"line.db": false, "postgres://st@db/line": true, "host=/run/postgresql dbname=line": true} {
		c.Database = db
		if c.Postgres() != pg {
			t.Errorf("Postgres(%q) = %v", db, !pg)
		}
	}
}
