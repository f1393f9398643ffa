package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"

	"github.com/lifeboat-updater/lifeboat/internal/netnstest"
)

// These tests configure real interfaces: a veth pair between two network
// namespaces created (and deleted) by the test, with a DHCP server on one
// end. Configure itself runs in a child process (this test binary again,
// under "ip netns exec"), because a network namespace belongs to a thread
// and Configure uses many.

const childEnv = "LIFEBOAT_NETWORK_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what the parent asks the child to do.
type childSpec struct {
	Cmdline     string
	Interfaces  []string
	LinkTimeout time.Duration
	DHCPTimeout time.Duration
	ResolvConf  string
	FetchURL    string // fetched after Configure, to prove the link works
}

type childIface struct {
	Name    string
	Address string
	Gateway string
	DNS     []string
	Err     string
	ErrKind string
}

type childOut struct {
	Err        string
	ErrKinds   []string
	Interfaces []childIface
	// Kernel state after Configure, per interface name.
	Addrs   map[string][]string
	Routes  []string
	Fetched string
	Log     []string
	Elapsed time.Duration
}

func errKinds(err error) []string {
	var out []string
	for _, k := range []struct {
		e    error
		name string
	}{
		{ErrDisabled, "disabled"}, {ErrNoInterface, "no-interface"}, {ErrNoCarrier, "no-carrier"},
		{ErrNoLease, "no-lease"}, {ErrNotConfigured, "not-configured"},
	} {
		if errors.Is(err, k.e) {
			out = append(out, k.name)
		}
	}
	return out
}

func child(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	var out childOut
	var mu sync.Mutex
	cfg := Config{
		Interfaces:  s.Interfaces,
		LinkTimeout: s.LinkTimeout,
		DHCPTimeout: s.DHCPTimeout,
		ResolvConf:  s.ResolvConf,
		Logf: func(f string, a ...any) {
			mu.Lock()
			out.Log = append(out.Log, fmt.Sprintf(f, a...))
			mu.Unlock()
		},
	}
	ip, err := IPFromCmdline(s.Cmdline)
	if err != nil {
		fmt.Println("bad cmdline:", err)
		return 2
	}
	cfg.IP = ip
	start := time.Now()
	res, err := Configure(context.Background(), cfg)
	out.Elapsed = time.Since(start)
	if err != nil {
		out.Err = err.Error()
		out.ErrKinds = errKinds(err)
	}
	if res != nil {
		for _, it := range res.Interfaces {
			ci := childIface{Name: it.Name}
			if it.Address.IsValid() {
				ci.Address = it.Address.String()
			}
			if it.Gateway.IsValid() {
				ci.Gateway = it.Gateway.String()
			}
			for _, d := range it.DNS {
				ci.DNS = append(ci.DNS, d.String())
			}
			if it.Err != nil {
				ci.Err = it.Err.Error()
				ci.ErrKind = strings.Join(errKinds(it.Err), ",")
			}
			out.Interfaces = append(out.Interfaces, ci)
		}
	}
	out.Addrs = map[string][]string{}
	links, _ := netlink.LinkList()
	for _, l := range links {
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			out.Addrs[l.Attrs().Name] = append(out.Addrs[l.Attrs().Name], a.IPNet.String())
		}
	}
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Gw != nil {
			out.Routes = append(out.Routes, fmt.Sprintf("%v via %v metric %d", r.Dst, r.Gw, r.Priority))
		}
	}
	if s.FetchURL != "" {
		c := &http.Client{Timeout: 3 * time.Second}
		if resp, err := c.Get(s.FetchURL); err != nil {
			out.Fetched = "error: " + err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out.Fetched = string(b)
		}
	}
	b, _ := json.Marshal(out)
	fmt.Printf("\nRESULT %s\n", b)
	return 0
}

// testNet is a server namespace and a client namespace joined by veth pairs.
type testNet struct {
	srv, cli string
}

func run(t *testing.T, args ...string) { netnstest.Run(t, args...) }

// newTestNet makes namespaces with, in the client namespace:
//
//	eth0: peer lbs0 (198.18.77.1/24, up): DHCP server and HTTP here
//	eth1: peer lbs1 left down: no carrier
//	eth2: peer lbs2 up, no server: no lease
//
// 198.18.0.0/15 is reserved for benchmarking and lives only inside these
// namespaces.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth pairs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip from iproute2 (Debian package iproute2)")
	}
	n := &testNet{
		srv: fmt.Sprintf("lbt-srv-%d", os.Getpid()),
		cli: fmt.Sprintf("lbt-cli-%d", os.Getpid()),
	}
	run(t, "ip", "netns", "add", n.srv)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.srv).Run() })
	run(t, "ip", "netns", "add", n.cli)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.cli).Run() })
	for i := 0; i < 3; i++ {
		run(t, "ip", "-n", n.srv, "link", "add", fmt.Sprintf("lbs%d", i), "type", "veth",
			"peer", "name", fmt.Sprintf("eth%d", i), "netns", n.cli)
	}
	run(t, "ip", "-n", n.srv, "addr", "add", "198.18.77.1/24", "dev", "lbs0")
	run(t, "ip", "-n", n.srv, "link", "set", "lbs0", "up")
	run(t, "ip", "-n", n.srv, "link", "set", "lbs2", "up")
	run(t, "ip", "-n", n.srv, "link", "set", "lo", "up")
	return n
}

// inNS runs f on a thread switched into the named namespace. Sockets made
// by f stay in that namespace after the thread switches back.
func inNS(t *testing.T, name string, f func() error) { netnstest.In(t, name, f) }

// dhcpServer answers on lbs0 with 198.18.77.10/24 and records the
// transaction ids it saw.
type dhcpServer struct {
	mu   sync.Mutex
	xids map[dhcpv4.TransactionID]int
}

func (n *testNet) startDHCP(t *testing.T) *dhcpServer {
	d := &dhcpServer{xids: map[dhcpv4.TransactionID]int{}}
	var conn net.PacketConn
	inNS(t, n.srv, func() (err error) {
		conn, err = server4.NewIPv4UDPConn("lbs0", &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	srvIP := net.IPv4(198, 18, 77, 1)
	handler := func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		var typ dhcpv4.MessageType
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			typ = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			typ = dhcpv4.MessageTypeAck
			if !m.ServerIdentifier().Equal(srvIP) || !m.RequestedIPAddress().Equal(net.IPv4(198, 18, 77, 10)) {
				typ = dhcpv4.MessageTypeNak
			}
		default:
			return
		}
		d.mu.Lock()
		d.xids[m.TransactionID]++
		d.mu.Unlock()
		r, err := dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(net.IPv4(198, 18, 77, 10)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(srvIP)),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
			dhcpv4.WithOption(dhcpv4.OptRouter(srvIP)),
			dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(198, 18, 77, 53))),
			dhcpv4.WithOption(dhcpv4.OptDomainName("lab.test")),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
		)
		if err != nil {
			t.Errorf("server: %v", err)
			return
		}
		if _, err := conn.WriteTo(r.ToBytes(), peer); err != nil {
			t.Errorf("server: write: %v", err)
		}
	}
	s, err := server4.NewServer("", nil, handler, server4.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return d
}

// startHTTP serves "reachable" on 198.18.77.1 in the server namespace.
func (n *testNet) startHTTP(t *testing.T) string {
	var ln net.Listener
	inNS(t, n.srv, func() (err error) {
		ln, err = net.Listen("tcp", "198.18.77.1:0")
		return err
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "reachable")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

func (n *testNet) runChild(t *testing.T, s childSpec) childOut {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(s)
	cmd := exec.Command("ip", "netns", "exec", n.cli, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	_, res, ok := strings.Cut(string(b), "\nRESULT ")
	if !ok {
		t.Fatalf("child printed no result:\n%s", b)
	}
	var out childOut
	if err := json.Unmarshal([]byte(strings.TrimSpace(res)), &out); err != nil {
		t.Fatalf("child result %q: %v", res, err)
	}
	for _, l := range out.Log {
		t.Logf("child: %s", l)
	}
	return out
}

func TestConfigureDHCPInNamespace(t *testing.T) {
	n := newTestNet(t)
	srv := n.startDHCP(t)
	url := n.startHTTP(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")

	out := n.runChild(t, childSpec{
		LinkTimeout: 1500 * time.Millisecond,
		DHCPTimeout: 2500 * time.Millisecond,
		ResolvConf:  resolv,
		FetchURL:    url,
	})
	if out.Err != "" {
		t.Errorf("Configure() = %s, want no error (one interface configured)", out.Err)
	}
	want := []childIface{
		{Name: "eth0", Address: "198.18.77.10/24", Gateway: "198.18.77.1", DNS: []string{"198.18.77.53"}},
		{Name: "eth1", ErrKind: "no-carrier"},
		{Name: "eth2", ErrKind: "no-lease"},
	}
	got := out.Interfaces
	for i := range got {
		got[i].Err = "" // compared by kind
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Configure() interfaces mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"198.18.77.10/24"}, out.Addrs["eth0"]); diff != "" {
		t.Errorf("eth0 kernel addresses mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0.0.0.0/0 via 198.18.77.1 metric 100"}, out.Routes); diff != "" {
		t.Errorf("kernel routes mismatch (-want +got):\n%s", diff)
	}
	if out.Fetched != "reachable" {
		t.Errorf("GET %s from the configured namespace = %q, want %q", url, out.Fetched, "reachable")
	}
	b, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "domain lab.test\nnameserver 198.18.77.53\n"; got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	// All interfaces ran at once: the run takes the longest timeout, not the sum.
	if max := 2500*time.Millisecond + time.Second; out.Elapsed > max {
		t.Errorf("Configure() took %v, want under %v (interfaces in parallel)", out.Elapsed, max)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for xid, c := range srv.xids {
		if c != 2 {
			t.Errorf("server saw xid %v %d times, want 2 (DISCOVER and REQUEST)", xid, c)
		}
	}
}

func TestConfigureStaticInNamespace(t *testing.T) {
	n := newTestNet(t)
	url := n.startHTTP(t)
	out := n.runChild(t, childSpec{
		Cmdline:     "console=ttyS0 ip=198.18.77.20:198.18.77.1:198.18.77.1:255.255.255.0:unit.lab::off:198.18.77.53",
		LinkTimeout: 1500 * time.Millisecond,
		FetchURL:    url,
	})
	if out.Err != "" {
		t.Errorf("Configure() = %s, want no error", out.Err)
	}
	// No device named: the first interface with carrier is eth0.
	if len(out.Interfaces) != 3 || out.Interfaces[0].Address != "198.18.77.20/24" {
		t.Fatalf("Configure() interfaces = %+v, want eth0 with 198.18.77.20/24", out.Interfaces)
	}
	if diff := cmp.Diff([]string{"198.18.77.20/24"}, out.Addrs["eth0"]); diff != "" {
		t.Errorf("eth0 kernel addresses mismatch (-want +got):\n%s", diff)
	}
	if len(out.Addrs["eth1"])+len(out.Addrs["eth2"]) != 0 {
		t.Errorf("other interfaces got addresses: %v", out.Addrs)
	}
	if out.Fetched != "reachable" {
		t.Errorf("GET %s = %q, want %q", url, out.Fetched, "reachable")
	}

	// A named device without carrier is configured anyway.
	out = n.runChild(t, childSpec{
		Cmdline:     "ip=198.18.78.20:::::eth1",
		LinkTimeout: 300 * time.Millisecond,
	})
	if out.Err != "" {
		t.Errorf("Configure(eth1 static) = %s, want no error", out.Err)
	}
	if diff := cmp.Diff([]string{"198.18.78.20/24"}, out.Addrs["eth1"]); diff != "" {
		t.Errorf("eth1 kernel addresses mismatch (-want +got):\n%s", diff)
	}
}

func TestConfigureNoServerInNamespace(t *testing.T) {
	n := newTestNet(t)
	out := n.runChild(t, childSpec{
		Cmdline:     "ip=:::::eth2:dhcp",
		LinkTimeout: 500 * time.Millisecond,
		DHCPTimeout: 1500 * time.Millisecond,
	})
	if diff := cmp.Diff([]string{"no-lease", "not-configured"}, out.ErrKinds); diff != "" {
		t.Errorf("Configure() error kinds mismatch (-want +got):\n%s\n%s", diff, out.Err)
	}
	if len(out.Interfaces) != 1 || out.Interfaces[0].Name != "eth2" {
		t.Errorf("Configure() interfaces = %+v, want only eth2", out.Interfaces)
	}

	out = n.runChild(t, childSpec{Cmdline: "ip=:::::eth9:dhcp", LinkTimeout: 300 * time.Millisecond})
	if diff := cmp.Diff([]string{"no-interface"}, out.ErrKinds); diff != "" {
		t.Errorf("Configure(eth9) error kinds mismatch (-want +got):\n%s\n%s", diff, out.Err)
	}
}

func TestConfigureOff(t *testing.T) {
	ip, err := ParseIP("off")
	if err != nil {
		t.Fatal(err)
	}
	// Returns before touching any interface, so it is safe on the host.
	res, err := Configure(context.Background(), Config{IP: ip})
	if !errors.Is(err, ErrDisabled) || res == nil || len(res.Interfaces) != 0 {
		t.Errorf("Configure(ip=off) = %+v, %v, want empty result and ErrDisabled", res, err)
	}
}
