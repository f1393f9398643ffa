package network

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParseIP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want *IPParam
	}{
		// The autoconf word alone.
		{"dhcp", &IPParam{Method: MethodDHCP, Autoconf: "dhcp"}},
		{"on", &IPParam{Method: MethodDHCP, Autoconf: "on"}},
		{"any", &IPParam{Method: MethodDHCP, Autoconf: "any"}},
		{"bootp", &IPParam{Method: MethodDHCP, Autoconf: "bootp"}},
		{"rarp", &IPParam{Method: MethodDHCP, Autoconf: "rarp"}},
		{"both", &IPParam{Method: MethodDHCP, Autoconf: "both"}},
		{"off", &IPParam{Method: MethodOff, Autoconf: "off"}},
		{"none", &IPParam{Method: MethodOff, Autoconf: "none"}},
		{"", &IPParam{Method: MethodOff}},
		// The kernel compares only "dhcp" (strncmp 4).
		{"dhcpx", &IPParam{Method: MethodDHCP, Autoconf: "dhcp"}},
		{"dhcp,1,board-42", &IPParam{Method: MethodDHCP, Autoconf: "dhcp", ClientIDType: 1, ClientID: "board-42"}},
		{"dhcp,0x3d,id", &IPParam{Method: MethodDHCP, Autoconf: "dhcp", ClientIDType: 0x3d, ClientID: "id"}},
		{"dhcp,1", &IPParam{Method: MethodDHCP, Autoconf: "dhcp"}},

		// Full static configuration.
		{
			"192.168.1.20:192.168.1.1:192.168.1.254:255.255.255.0:board.example.com:eth0:off:192.168.1.53:9.9.9.9:192.168.1.123",
			&IPParam{
				Method: MethodStatic, Autoconf: "off",
				ClientIP: addr("192.168.1.20"), ServerIP: addr("192.168.1.1"),
				Gateway: addr("192.168.1.254"), Netmask: addr("255.255.255.0"),
				Hostname: "board", NISDomain: "example.com", Device: "eth0",
				DNS: []netip.Addr{addr("192.168.1.53"), addr("9.9.9.9")},
				NTP: []netip.Addr{addr("192.168.1.123")},
			},
		},
		// Fields past the tenth are ignored.
		{
			"10.1.2.3::10.1.2.1:255.255.0.0:::none::::extra:more",
			&IPParam{Method: MethodStatic, Autoconf: "none", ClientIP: addr("10.1.2.3"),
				Gateway: addr("10.1.2.1"), Netmask: addr("255.255.0.0")},
		},
		// Classful netmask guesses.
		{"10.0.0.5", &IPParam{Method: MethodStatic, ClientIP: addr("10.0.0.5"), Netmask: addr("255.0.0.0")}},
		{"172.16.0.5", &IPParam{Method: MethodStatic, ClientIP: addr("172.16.0.5"), Netmask: addr("255.255.0.0")}},
		{"192.168.0.5", &IPParam{Method: MethodStatic, ClientIP: addr("192.168.0.5"), Netmask: addr("255.255.255.0")}},
		// A client address with an autoconf protocol is still static.
		{
			"10.0.0.2::10.0.0.1:255.255.255.0::eth1:dhcp",
			&IPParam{Method: MethodStatic, Autoconf: "dhcp", ClientIP: addr("10.0.0.2"),
				Gateway: addr("10.0.0.1"), Netmask: addr("255.255.255.0"), Device: "eth1"},
		},
		// A client address with autoconf off stays static.
		{"10.0.0.2:::255.255.255.0:::off", &IPParam{Method: MethodStatic, Autoconf: "off",
			ClientIP: addr("10.0.0.2"), Netmask: addr("255.255.255.0")}},

		// No client address: autoconfiguration, with overrides.
		{":::::eth0:dhcp", &IPParam{Method: MethodDHCP, Autoconf: "dhcp", Device: "eth0"}},
		{":::::eth0", &IPParam{Method: MethodDHCP, Device: "eth0"}},
		{"::::myhost::dhcp", &IPParam{Method: MethodDHCP, Autoconf: "dhcp", Hostname: "myhost"}},
		{
			":::::eth0:dhcp:1.1.1.1:8.8.8.8:10.0.0.123",
			&IPParam{Method: MethodDHCP, Autoconf: "dhcp", Device: "eth0",
				DNS: []netip.Addr{addr("1.1.1.1"), addr("8.8.8.8")}, NTP: []netip.Addr{addr("10.0.0.123")}},
		},
		{":::::eth0:dhcp,1,abc", &IPParam{Method: MethodDHCP, Autoconf: "dhcp", Device: "eth0", ClientIDType: 1, ClientID: "abc"}},
		// No client address and autoconf off, none or unknown: disabled.
		{":::::eth0:off", &IPParam{Method: MethodOff, Autoconf: "off", Device: "eth0"}},
		{":::::eth0:none", &IPParam{Method: MethodOff, Autoconf: "none", Device: "eth0"}},
		{":::::eth0:magic", &IPParam{Method: MethodOff, Autoconf: "magic", Device: "eth0"}},
		// 0.0.0.0 means not given.
		{"0.0.0.0:0.0.0.0:0.0.0.0:0.0.0.0::eth0:dhcp:0.0.0.0", &IPParam{Method: MethodDHCP, Autoconf: "dhcp", Device: "eth0"}},
		// The second dns field alone.
		{"::::::::8.8.4.4", &IPParam{Method: MethodDHCP, DNS: []netip.Addr{addr("8.8.4.4")}}},
		// Only colons.
		{":::::::::", &IPParam{Method: MethodDHCP}},
		// A hostname with a trailing dot has an empty NIS domain.
		{"::::host.", &IPParam{Method: MethodDHCP, Hostname: "host"}},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseIP(tt.in)
			if err != nil {
				t.Fatalf("ParseIP(%q) = %v, want no error", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseIP(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseIPErrors(t *testing.T) {
	for _, in := range []string{
		"eth0",                        // not an address in field 0
		"10.0.0.300",                  // bad octet
		"10.0.0.1:bogus",              // server
		"10.0.0.1::1.2.3",             // gateway
		"10.0.0.1:::255.0.255.0",      // non-contiguous mask
		"10.0.0.1:::nope",             // mask
		"230.0.0.1",                   // class D: no netmask guess
		"::::::::dns",                 // dns1
		":::::::fe80::1",              // IPv6 is not accepted by ip=
		":::::::::ntp",                // ntp0
		":::::eth0:dhcp,notanumber,x", // client id type
		"dhcp,256,x",                  // client id type out of range
	} {
		t.Run(in, func(t *testing.T) {
			got, err := ParseIP(in)
			if !errors.Is(err, ErrIPParam) {
				t.Errorf("ParseIP(%q) = %+v, %v, want ErrIPParam", in, got, err)
			}
		})
	}
}

func TestIPParamPrefix(t *testing.T) {
	p, err := ParseIP("192.168.7.9:::255.255.252.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Prefix(), netip.MustParsePrefix("192.168.7.9/22"); got != want {
		t.Errorf("Prefix() = %v, want %v", got, want)
	}
	if got := (&IPParam{}).Prefix(); got.IsValid() {
		t.Errorf("Prefix() of empty = %v, want invalid", got)
	}
}

func TestIPFromCmdline(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    *IPParam
	}{
		{"console=ttyS0 quiet", nil},
		{"console=ttyS0 ip=dhcp quiet", &IPParam{Method: MethodDHCP, Autoconf: "dhcp"}},
		{"ip=off ip=dhcp", &IPParam{Method: MethodDHCP, Autoconf: "dhcp"}},
		{"nfsaddrs=10.0.0.2:::255.0.0.0\n", &IPParam{Method: MethodStatic, ClientIP: addr("10.0.0.2"), Netmask: addr("255.0.0.0")}},
		{`foo="a b" ip="::::h::dhcp"`, &IPParam{Method: MethodDHCP, Autoconf: "dhcp", Hostname: "h"}},
		{"noip=dhcp", nil},
	} {
		got, err := IPFromCmdline(tt.cmdline)
		if err != nil {
			t.Errorf("IPFromCmdline(%q) = %v", tt.cmdline, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("IPFromCmdline(%q) mismatch (-want +got):\n%s", tt.cmdline, diff)
		}
	}
}

func TestMethodString(t *testing.T) {
	for m, want := range map[Method]string{MethodDHCP: "dhcp", MethodStatic: "static", MethodOff: "off", 9: "Method(9)"} {
		if got := m.String(); got != want {
			t.Errorf("Method(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}
