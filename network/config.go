package network

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Defaults used when a Config field is zero.
const (
	DefaultLinkTimeout = 10 * time.Second
	DefaultDHCPTimeout = 30 * time.Second
	DefaultResolvConf  = "/etc/resolv.conf"
	DefaultSysClassNet = "/sys/class/net"
	DefaultVendorClass = "lifeboat"
)

// Config says what Configure does. The zero value runs DHCP on every wired
// interface and writes no resolv.conf.
type Config struct {
	// IP is the parsed kernel ip= parameter (see IPFromCmdline); nil means
	// DHCP on every wired interface.
	IP *IPParam

	// Interfaces, if not empty, limits configuration to these names.
	// IP.Device, when set, limits it further to that one.
	Interfaces []string

	// LinkTimeout bounds the wait for carrier on each interface.
	LinkTimeout time.Duration

	// DHCPTimeout bounds the whole DHCP exchange (with its retransmissions)
	// on each interface.
	DHCPTimeout time.Duration

	// ResolvConf is the file written with the name servers found; empty
	// means none is written. The rescue passes DefaultResolvConf.
	ResolvConf string

	// SysClassNet is where sysfs describes interfaces, used to recognise
	// wireless ones; DefaultSysClassNet when empty.
	SysClassNet string

	// Hostname is sent to the DHCP server (option 12) unless IP carries one.
	Hostname string

	// VendorClass is sent as the DHCP vendor class identifier (option 60),
	// so that a factory line's server can recognise the rescue;
	// DefaultVendorClass when empty.
	VendorClass string

	// Logf, if not nil, receives one line per step a person may want to see.
	Logf func(format string, args ...any)
}

// Result is what Configure did, interface by interface.
type Result struct {
	// Interfaces holds every interface Configure tried, in link order.
	// Those with Err == nil are configured.
	Interfaces []Interface
}

// Configured returns the interfaces that got an address.
func (r *Result) Configured() []Interface {
	var out []Interface
	for _, i := range r.Interfaces {
		if i.Err == nil && i.Address.IsValid() {
			out = append(out, i)
		}
	}
	return out
}

// DNS returns the name servers of all configured interfaces, without
// duplicates, in interface order.
func (r *Result) DNS() []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, i := range r.Configured() {
		for _, a := range i.DNS {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// Interface is the configuration applied to one interface, or why none was.
type Interface struct {
	Name         string
	HardwareAddr net.HardwareAddr
	Method       Method

	// Address is the interface's address with its prefix length.
	Address netip.Prefix
	// Gateway is the default route's next hop, if any.
	Gateway netip.Addr
	// Routes are the classless static routes (DHCP option 121) installed.
	Routes []Route

	DNS      []netip.Addr
	Domain   string
	Search   []string
	NTP      []netip.Addr
	Hostname string

	// Server is the DHCP server, or the ip= <server-ip>.
	Server netip.Addr
	// NextServer and BootFile are the DHCP boot fields (siaddr or option
	// 66, and option 67 or the file field), for a factory line that points
	// the rescue at its bundle that way.
	NextServer string
	BootFile   string
	// LeaseTime is the DHCP lease time; zero for static configuration.
	LeaseTime time.Duration

	// Err is why this interface is not configured (wraps ErrNoCarrier,
	// ErrNoLease, ...); nil when it is.
	Err error
}

func (i Interface) String() string {
	if i.Err != nil {
		return fmt.Sprintf("%s: %v", i.Name, i.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %v", i.Name, i.Method, i.Address)
	if i.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %v", i.Gateway)
	}
	if len(i.DNS) > 0 {
		fmt.Fprintf(&b, " dns %v", i.DNS)
	}
	return b.String()
}

// Route is a classless static route: Dst via Gateway (on-link when the
// gateway is unset).
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.LinkTimeout <= 0 {
		d.LinkTimeout = DefaultLinkTimeout
	}
	if d.DHCPTimeout <= 0 {
		d.DHCPTimeout = DefaultDHCPTimeout
	}
	if d.SysClassNet == "" {
		d.SysClassNet = DefaultSysClassNet
	}
	if d.VendorClass == "" {
		d.VendorClass = DefaultVendorClass
	}
	if d.IP == nil {
		d.IP = &IPParam{Method: MethodDHCP}
	}
	return d
}
