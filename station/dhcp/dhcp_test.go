package dhcp

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/lifeboat-updater/lifeboat/internal/netnstest"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
)

// line is a station namespace (interface line0, 198.18.91.1/24) and a
// board namespace (eth0, no address) joined by a veth pair.
type line struct{ station, board string }

func newLine(t *testing.T) line {
	l := line{station: netnstest.New(t, "lbst-st"), board: netnstest.New(t, "lbst-bd")}
	netnstest.Link(t, l.station, "line0", "198.18.91.1/24", l.board, "eth0", "")
	return l
}

func testConfig(t *testing.T) Config {
	return Config{
		Interface: "line0", ServerIP: netip.MustParseAddr("198.18.91.1"), Prefix: netip.MustParsePrefix("198.18.91.0/24"),
		First: netip.MustParseAddr("198.18.91.100"), Last: netip.MustParseAddr("198.18.91.102"), Lease: time.Hour,
		StationURL: "http://198.18.91.1:8080",
		Boot:       Boot{BIOS: "undionly.kpxe", EFI64: "ipxe.efi", UBoot: "boot.scr", IPXE: "http://198.18.91.1:8080/boot.ipxe"},
		LeasesFile: filepath.Join(t.TempDir(), "leases.json"),
		Logf:       t.Logf,
	}
}

func (l line) serve(t *testing.T, cfg Config) *Server {
	var conn net.PacketConn
	netnstest.In(t, l.station, func() (err error) {
		conn, err = Listen(cfg.Interface)
		return err
	})
	s, err := New(cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	return s
}

// udhcpc runs busybox's DHCP client in the board namespace and returns the
// variables its script was given on "bound".
func (l line) udhcpc(t *testing.T, args ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	out := filepath.Join(dir, "env")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && env > "+out+"\nexit 0\n"), 0o755)
	cmd := netnstest.Exec(l.board, append([]string{"busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-s", script}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("udhcpc %v: %v\n%s", args, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatalf("udhcpc script never saw bound: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		env[k] = v
	}
	return env
}

func TestBusyboxClients(t *testing.T) {
	if _, err := os.Stat("/usr/bin/busybox"); err != nil {
		t.Fatal("busybox not found: Debian package busybox (scripts/install-deps.sh installs it)")
	}
	l := newLine(t)
	srv := l.serve(t, testConfig(t))
	for _, tc := range []struct {
		name     string
		args     []string
		bootFile string
	}{
		{"plain", nil, ""},
		{"pxe-bios", []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"}, "undionly.kpxe"},
		{"pxe-efi64", []string{"-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"}, "ipxe.efi"},
		{"u-boot", []string{"-V", "U-Boot.armv8"}, "boot.scr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := l.udhcpc(t, tc.args...)
			if env["ip"] != "198.18.91.100" || env["subnet"] != "255.255.255.0" || env["serverid"] != "198.18.91.1" {
				t.Errorf("udhcpc got ip=%q subnet=%q serverid=%q, want 198.18.91.100 255.255.255.0 198.18.91.1", env["ip"], env["subnet"], env["serverid"])
			}
			if env["boot_file"] != tc.bootFile {
				t.Errorf("boot_file = %q, want %q", env["boot_file"], tc.bootFile)
			}
			if tc.bootFile != "" && env["siaddr"] != "198.18.91.1" {
				t.Errorf("siaddr = %q, want the station 198.18.91.1", env["siaddr"])
			}
		})
	}
	// One MAC, one address: every run above was the same board.
	if ls := srv.Leases(); len(ls) != 1 || ls[0].IP.String() != "198.18.91.100" {
		t.Errorf("leases = %+v, want one for 198.18.91.100", ls)
	}
}

// TestLifeboatAndIPXE uses the insomniacslk client, as the rescue does,
// with the vendor class of a Lifeboat rescue and the user class of iPXE.
func TestLifeboatAndIPXE(t *testing.T) {
	l := newLine(t)
	cfg := testConfig(t)
	l.serve(t, cfg)
	lease := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		var c *nclient4.Client
		netnstest.In(t, l.board, func() (err error) {
			c, err = nclient4.New("eth0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
			return err
		})
		defer c.Close()
		ls, err := c.Request(context.Background(), mods...)
		if err != nil {
			t.Fatalf("lease: %v", err)
		}
		return ls.ACK
	}
	ack := lease(dhcpv4.WithOption(dhcpv4.OptClassIdentifier(protocol.VendorClass + "-rescue")))
	url, err := protocol.DecodeStationOption(ack.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	if err != nil || url != cfg.StationURL {
		t.Errorf("option 43 station URL = %q, %v; want %q", url, err, cfg.StationURL)
	}
	if ack.YourIPAddr.String() != "198.18.91.100" {
		t.Errorf("address %s, want 198.18.91.100", ack.YourIPAddr)
	}
	ack = lease(dhcpv4.WithUserClass("iPXE", false), dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000")))
	if f := ack.BootFileNameOption(); f != cfg.Boot.IPXE {
		t.Errorf("iPXE boot file = %q, want %q", f, cfg.Boot.IPXE)
	}
}

// TestRangeAndRestart: the range runs out; a restarted server (the leases
// file) keeps each board's address and gives no address twice.
func TestRangeAndRestart(t *testing.T) {
	l := newLine(t)
	cfg := testConfig(t)
	srv := l.serve(t, cfg)
	get := func(mac string) (string, error) {
		hw, _ := net.ParseMAC(mac)
		var c *nclient4.Client
		netnstest.In(t, l.board, func() (err error) {
			c, err = nclient4.New("eth0", nclient4.WithHWAddr(hw), nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
			return err
		})
		defer c.Close()
		ls, err := c.Request(context.Background(), dhcpv4.WithBroadcast(true))
		if err != nil {
			return "", err
		}
		return ls.ACK.YourIPAddr.String(), nil
	}
	want := map[string]string{"02:00:00:00:00:01": "198.18.91.100", "02:00:00:00:00:02": "198.18.91.101", "02:00:00:00:00:03": "198.18.91.102"}
	for _, mac := range []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"} {
		if ip, err := get(mac); err != nil || ip != want[mac] {
			t.Errorf("%s got %s, %v; want %s", mac, ip, err, want[mac])
		}
	}
	if ip, err := get("02:00:00:00:00:04"); err == nil {
		t.Errorf("a fourth board got %s from a range of three", ip)
	}
	srv.Close()
	srv2 := l.serve(t, cfg)
	if ip, err := get("02:00:00:00:00:02"); err != nil || ip != "198.18.91.101" {
		t.Errorf("after a restart 02:..:02 got %s, %v; want its 198.18.91.101", ip, err)
	}
	if n := len(srv2.Leases()); n != 3 {
		t.Errorf("after a restart %d leases, want 3", n)
	}
}

// TestProbe: with nothing else on the wire the probe passes; with another
// DHCP server there it refuses, naming it.
func TestProbe(t *testing.T) {
	l := newLine(t)
	probe := func() error {
		var err error
		netnstest.In(t, l.station, func() error {
			err = Probe(context.Background(), "line0", 1500*time.Millisecond)
			return nil
		})
		return err
	}
	if err := probe(); err != nil {
		t.Fatalf("Probe() on a quiet line = %v, want nil", err)
	}
	// An office's DHCP server on the other end of the wire.
	netnstest.Run(t, "ip", "-n", l.board, "addr", "add", "198.18.91.254/24", "dev", "eth0")
	var conn net.PacketConn
	netnstest.In(t, l.board, func() (err error) {
		conn, err = server4.NewIPv4UDPConn("eth0", &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	office := net.IPv4(198, 18, 91, 254)
	rogue, err := server4.NewServer("eth0", nil, func(c net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		if m.MessageType() != dhcpv4.MessageTypeDiscover {
			return
		}
		r, _ := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
			dhcpv4.WithYourIP(net.IPv4(198, 18, 91, 50)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(office)))
		c.WriteTo(r.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}, server4.WithConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	go rogue.Serve()
	defer rogue.Close()
	err = probe()
	if !errors.Is(err, ErrOtherServer) || !strings.Contains(err.Error(), "198.18.91.254") {
		t.Fatalf("Probe() with another server = %v, want ErrOtherServer naming 198.18.91.254", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("Probe() error spans lines: %q", err)
	}
	t.Logf("refusal: %v", err)
}

func TestValidate(t *testing.T) {
	base := testConfig(t)
	for name, mod := range map[string]func(*Config){
		"range outside prefix": func(c *Config) { c.Last = netip.MustParseAddr("198.18.92.5") },
		"range backwards":      func(c *Config) { c.First, c.Last = c.Last, c.First },
		"range holds station":  func(c *Config) { c.First = netip.MustParseAddr("198.18.91.1") },
		"station outside":      func(c *Config) { c.ServerIP = netip.MustParseAddr("198.18.1.1") },
	} {
		c := base
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil, want an error", name)
		}
	}
	if err := base.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}
