package network

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/rfc1035label"
	"golang.org/x/sys/unix"
)

// TestTransactionIDWithoutEntropy is the regression test for the boot stall:
// with the kernel pool not ready, ids still come at once and differ.
func TestTransactionIDWithoutEntropy(t *testing.T) {
	old := getrandomNonblock
	t.Cleanup(func() { getrandomNonblock = old })
	calls := 0
	getrandomNonblock = func([]byte) error { calls++; return unix.EAGAIN }

	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	seen := map[dhcpv4.TransactionID]bool{}
	start := time.Now()
	for i := 0; i < 1000; i++ {
		seen[transactionID(mac)] = true
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 transactionID() took %v, want well under 1s", d)
	}
	if calls != 1000 {
		t.Errorf("getrandom asked %d times, want 1000", calls)
	}
	if len(seen) < 990 {
		t.Errorf("1000 transactionID() gave %d distinct ids, want ~1000", len(seen))
	}
}

// TestNoBlockingTransactionID keeps the package away from the library calls
// that draw transaction ids from a source that waits for entropy.
func TestNoBlockingTransactionID(t *testing.T) {
	banned := map[string]bool{
		"dhcpv4.New": true, "dhcpv4.NewWithContext": true, "dhcpv4.NewDiscovery": true,
		"dhcpv4.NewDiscoveryForInterface": true, "dhcpv4.NewRequestFromOffer": true,
		"dhcpv4.NewInform": true, "dhcpv4.NewRenewFromAck": true, "dhcpv4.NewReleaseFromACK": true,
		"dhcpv4.GenerateTransactionID": true, "dhcpv4.GenerateTransactionIDWithContext": true,
		"dhcpv6.NewMessage": true, "dhcpv6.GenerateTransactionID": true,
	}
	bannedMethods := map[string]bool{"Request": true, "DiscoverOffer": true, "RequestFromOffer": true, "Inform": true, "Renew": true, "Release": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && banned[x.Name+"."+sel.Sel.Name] {
				t.Errorf("%v: uses %s.%s, which waits for entropy", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "client" && bannedMethods[sel.Sel.Name] {
				t.Errorf("%v: uses nclient4 Client.%s, which waits for entropy", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

// fakeServer answers DHCP messages in memory.
type fakeServer struct {
	sent   []*dhcpv4.DHCPv4
	answer func(*dhcpv4.DHCPv4) *dhcpv4.DHCPv4
}

func (f *fakeServer) RemoteAddr() *net.UDPAddr { return nclient4.DefaultServers }

func (f *fakeServer) SendAndRead(ctx context.Context, dest *net.UDPAddr, p *dhcpv4.DHCPv4, match nclient4.Matcher) (*dhcpv4.DHCPv4, error) {
	// Round-trip through bytes, as on the wire.
	wire, err := dhcpv4.FromBytes(p.ToBytes())
	if err != nil {
		return nil, err
	}
	f.sent = append(f.sent, wire)
	r := f.answer(wire)
	if r == nil || (match != nil && !match(r)) {
		return nil, nclient4.ErrNoResponse
	}
	return r, nil
}

func reply(req *dhcpv4.DHCPv4, t dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	r := newMessage(req.TransactionID, req.ClientHWAddr, append([]dhcpv4.Modifier{
		dhcpv4.WithReply(req),
		dhcpv4.WithMessageType(t),
		dhcpv4.WithYourIP(net.IPv4(192, 0, 2, 10)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
	}, mods...)...)
	return r
}

func TestExchange(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	srv := &fakeServer{answer: func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			return reply(m, dhcpv4.MessageTypeOffer)
		case dhcpv4.MessageTypeRequest:
			return reply(m, dhcpv4.MessageTypeAck)
		}
		return nil
	}}
	cfg := (&Config{Hostname: "board7"}).withDefaults()
	ip := &IPParam{ClientIDType: 1, ClientID: "unit-42"}
	ack, err := exchange(context.Background(), srv, mac, commonOptions(&cfg, ip))
	if err != nil {
		t.Fatalf("exchange() = %v", err)
	}
	if got, want := ack.YourIPAddr.String(), "192.0.2.10"; got != want {
		t.Errorf("ACK address = %s, want %s", got, want)
	}
	if len(srv.sent) != 2 {
		t.Fatalf("sent %d messages, want 2", len(srv.sent))
	}
	d, r := srv.sent[0], srv.sent[1]
	if d.MessageType() != dhcpv4.MessageTypeDiscover || r.MessageType() != dhcpv4.MessageTypeRequest {
		t.Errorf("sent %v, %v; want DISCOVER, REQUEST", d.MessageType(), r.MessageType())
	}
	if d.TransactionID != r.TransactionID {
		t.Errorf("REQUEST xid %v != DISCOVER xid %v", r.TransactionID, d.TransactionID)
	}
	if got := r.RequestedIPAddress().String(); got != "192.0.2.10" {
		t.Errorf("REQUEST requested address = %s, want 192.0.2.10", got)
	}
	if got := r.ServerIdentifier().String(); got != "192.0.2.1" {
		t.Errorf("REQUEST server id = %s, want 192.0.2.1", got)
	}
	for _, m := range srv.sent {
		if got := m.HostName(); got != "board7" {
			t.Errorf("%v hostname = %q, want board7", m.MessageType(), got)
		}
		if got := m.ClassIdentifier(); got != DefaultVendorClass {
			t.Errorf("%v vendor class = %q, want %q", m.MessageType(), got, DefaultVendorClass)
		}
		if got, want := m.Options.Get(dhcpv4.OptionClientIdentifier), append([]byte{1}, "unit-42"...); string(got) != string(want) {
			t.Errorf("%v client id = %q, want %q", m.MessageType(), got, want)
		}
		if !m.IsOptionRequested(dhcpv4.OptionDomainNameServer) || !m.IsOptionRequested(dhcpv4.OptionClasslessStaticRoute) {
			t.Errorf("%v does not request DNS and routes: %v", m.MessageType(), m.ParameterRequestList())
		}
		if m.ClientHWAddr.String() != mac.String() {
			t.Errorf("%v chaddr = %v, want %v", m.MessageType(), m.ClientHWAddr, mac)
		}
	}
}

func TestExchangeNak(t *testing.T) {
	srv := &fakeServer{answer: func(m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		if m.MessageType() == dhcpv4.MessageTypeDiscover {
			return reply(m, dhcpv4.MessageTypeOffer)
		}
		return reply(m, dhcpv4.MessageTypeNak)
	}}
	_, err := exchange(context.Background(), srv, net.HardwareAddr{2, 0, 0, 0, 0, 2}, nil)
	var nak *nclient4.ErrNak
	if !errors.As(err, &nak) {
		t.Errorf("exchange() = %v, want ErrNak", err)
	}
}

func TestLeaseInterface(t *testing.T) {
	base := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		return newMessage(dhcpv4.TransactionID{1, 2, 3, 4}, net.HardwareAddr{2, 0, 0, 0, 0, 3}, append([]dhcpv4.Modifier{
			dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
			dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 2, 1))),
		}, mods...)...)
	}
	for _, tt := range []struct {
		name string
		ack  *dhcpv4.DHCPv4
		ip   IPParam
		want Interface
	}{
		{
			name: "full",
			ack: base(
				dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
				dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 1, 2, 254))),
				dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 1, 2, 53), net.IPv4(10, 1, 2, 54))),
				dhcpv4.WithOption(dhcpv4.OptNTPServers(net.IPv4(10, 1, 2, 123))),
				dhcpv4.WithOption(dhcpv4.OptDomainName("lab.example")),
				dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"lab.example", "example"}})),
				dhcpv4.WithOption(dhcpv4.OptHostName("unit9")),
				dhcpv4.WithOption(dhcpv4.OptTFTPServerName("10.1.2.5")),
				dhcpv4.WithOption(dhcpv4.OptBootFileName("lifeboat/board.lfb")),
				dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(2*time.Hour)),
			),
			want: Interface{
				Method: MethodDHCP, Address: netip.MustParsePrefix("10.1.2.3/24"), Gateway: addr("10.1.2.254"),
				DNS: []netip.Addr{addr("10.1.2.53"), addr("10.1.2.54")}, NTP: []netip.Addr{addr("10.1.2.123")},
				Domain: "lab.example", Search: []string{"lab.example", "example"}, Hostname: "unit9",
				Server: addr("10.1.2.1"), NextServer: "10.1.2.5", BootFile: "lifeboat/board.lfb", LeaseTime: 2 * time.Hour,
			},
		},
		{
			name: "no mask: classful; siaddr as next server; file field",
			ack: base(func(d *dhcpv4.DHCPv4) {
				d.ServerIPAddr = net.IPv4(10, 1, 2, 6)
				d.BootFileName = "pxe.lfb"
			}),
			want: Interface{Method: MethodDHCP, Address: netip.MustParsePrefix("10.1.2.3/8"), Server: addr("10.1.2.1"),
				NextServer: "10.1.2.6", BootFile: "pxe.lfb"},
		},
		{
			name: "classless routes win over the router option",
			ack: base(
				dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(32, 32))),
				dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 9, 9, 9))),
				dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
					&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(10, 1, 2, 1).To4(), Mask: net.CIDRMask(32, 32)}, Router: net.IPv4zero},
					&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(172, 16, 0, 0).To4(), Mask: net.CIDRMask(12, 32)}, Router: net.IPv4(10, 1, 2, 1)},
					&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 1, 2, 1)},
				)),
			),
			want: Interface{Method: MethodDHCP, Address: netip.MustParsePrefix("10.1.2.3/32"), Gateway: addr("10.1.2.1"),
				Routes: []Route{
					{Dst: netip.MustParsePrefix("10.1.2.1/32")},
					{Dst: netip.MustParsePrefix("172.16.0.0/12"), Gateway: addr("10.1.2.1")},
				},
				Server: addr("10.1.2.1")},
		},
		{
			name: "ip= fields override the server",
			ack: base(
				dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
				dhcpv4.WithOption(dhcpv4.OptRouter(net.IPv4(10, 1, 2, 254))),
				dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 1, 2, 53))),
				dhcpv4.WithOption(dhcpv4.OptHostName("fromdhcp")),
			),
			ip: IPParam{Gateway: addr("10.1.2.250"), Netmask: addr("255.255.0.0"), DNS: []netip.Addr{addr("9.9.9.9")},
				NTP: []netip.Addr{addr("10.0.0.1")}, Hostname: "mine", ServerIP: addr("10.1.2.7")},
			want: Interface{Method: MethodDHCP, Address: netip.MustParsePrefix("10.1.2.3/16"), Gateway: addr("10.1.2.250"),
				DNS: []netip.Addr{addr("9.9.9.9")}, NTP: []netip.Addr{addr("10.0.0.1")}, Hostname: "mine", Server: addr("10.1.2.7")},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := leaseInterface(tt.ack, &tt.ip)
			if err != nil {
				t.Fatalf("leaseInterface() = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("leaseInterface() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "resolv.conf")
	err := WriteResolvConf(path, []netip.Addr{addr("10.0.0.53"), addr("9.9.9.9")}, "lab.example", []string{"lab.example", "example"})
	if err != nil {
		t.Fatalf("WriteResolvConf() = %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "domain lab.example\nsearch lab.example example\nnameserver 10.0.0.53\nnameserver 9.9.9.9\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("resolv.conf mismatch (-want +got):\n%s", diff)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("resolv.conf mode = %v, want 0644", fi.Mode().Perm())
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{"10.1.2.3/24": "10.1.2.255", "10.1.2.3/8": "10.255.255.255", "192.168.5.1/22": "192.168.7.255"} {
		if got := broadcast(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}
