// Package dhcp is the factory line's DHCPv4 server: addresses from a small
// range on the line's own interface, and the boot file each kind of client
// needs (a PXE ROM gets iPXE by TFTP, iPXE gets a script by HTTP, U-Boot a
// file by TFTP, the Lifeboat rescue the station's URL). Before it serves,
// Probe makes sure no other DHCP server answers on that interface: a
// station must never hand out addresses on an office network.
package dhcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/lifeboat-updater/lifeboat/station/protocol"
)

// Boot says which file each kind of network boot client gets.
type Boot struct {
	BIOS     string // PXE on BIOS (architecture 0): by TFTP, e.g. "undionly.kpxe"
	EFI64    string // PXE on x86-64 UEFI (architectures 7, 9): by TFTP, e.g. "ipxe.efi"
	EFIArm64 string // PXE on arm64 UEFI (architecture 11)
	UBoot    string // U-Boot (vendor class "U-Boot..."): by TFTP, e.g. "boot.scr"
	IPXE     string // iPXE (user class "iPXE"): a URL, e.g. "http://10.77.0.1/boot.ipxe"
}

// Config is the server's configuration.
type Config struct {
	Interface  string
	ServerIP   netip.Addr // the station's address on Interface
	Prefix     netip.Prefix
	First      netip.Addr // the range handed out, inclusive
	Last       netip.Addr
	Lease      time.Duration
	Router     netip.Addr   // optional
	DNS        []netip.Addr // optional
	StationURL string       // given to Lifeboat clients (option 43)
	Boot       Boot
	// LeasesFile keeps the leases across a restart, so that a station
	// that was killed does not give a board's address to another.
	LeasesFile string
	Logf       func(format string, args ...any)
	Now        func() time.Time
}

// Validate checks the range against the prefix.
func (c *Config) Validate() error {
	if !c.Prefix.Contains(c.ServerIP) {
		return fmt.Errorf("dhcp: station address %s is not in %s", c.ServerIP, c.Prefix)
	}
	if !c.Prefix.Contains(c.First) || !c.Prefix.Contains(c.Last) || c.Last.Less(c.First) {
		return fmt.Errorf("dhcp: range %s-%s is not inside %s", c.First, c.Last, c.Prefix)
	}
	if !c.ServerIP.Less(c.First) && !c.Last.Less(c.ServerIP) {
		return fmt.Errorf("dhcp: range %s-%s holds the station's own address %s", c.First, c.Last, c.ServerIP)
	}
	return nil
}

// ErrOtherServer means another DHCP server answers on the interface.
var ErrOtherServer = errors.New("dhcp: another DHCP server answers on this interface")

// Lease is one address given to one client.
type Lease struct {
	MAC     string     `json:"mac"`
	IP      netip.Addr `json:"ip"`
	Expires time.Time  `json:"expires"`
}

// Server answers DHCP on one interface.
type Server struct {
	cfg    Config
	mu     sync.Mutex
	leases map[string]Lease // by MAC
	srv    *server4.Server
}

// Listen opens the DHCP server socket on the interface (UDP port 67, bound
// to the device).
func Listen(iface string) (net.PacketConn, error) {
	c, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: dhcpv4.ServerPort})
	if err != nil {
		return nil, fmt.Errorf("dhcp: %s: %w", iface, err)
	}
	return c, nil
}

// New makes a server that answers on conn (from Listen).
func New(cfg Config, conn net.PacketConn) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Lease == 0 {
		cfg.Lease = time.Hour
	}
	s := &Server{cfg: cfg, leases: map[string]Lease{}}
	if err := s.load(); err != nil {
		return nil, err
	}
	srv, err := server4.NewServer(cfg.Interface, nil, s.handle, server4.WithConn(conn))
	if err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	s.srv = srv
	return s, nil
}

// Serve answers until Close.
func (s *Server) Serve() error { return s.srv.Serve() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Leases returns the current leases.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lease
	for _, l := range s.leases {
		out = append(out, l)
	}
	return out
}

func (s *Server) load() error {
	if s.cfg.LeasesFile == "" {
		return nil
	}
	b, err := os.ReadFile(s.cfg.LeasesFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dhcp: leases: %w", err)
	}
	var ls []Lease
	if err := json.Unmarshal(b, &ls); err != nil {
		return fmt.Errorf("dhcp: leases file %s: %w", s.cfg.LeasesFile, err)
	}
	for _, l := range ls {
		if s.inRange(l.IP) {
			s.leases[l.MAC] = l
		}
	}
	return nil
}

// save writes the leases through a synced temporary file and a rename.
// Called with mu held.
func (s *Server) save() error {
	if s.cfg.LeasesFile == "" {
		return nil
	}
	ls := make([]Lease, 0, len(s.leases))
	for _, l := range s.leases {
		ls = append(ls, l)
	}
	b, err := json.Marshal(ls)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.cfg.LeasesFile), ".leases-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.cfg.LeasesFile)
}

func (s *Server) inRange(ip netip.Addr) bool {
	return ip.IsValid() && !ip.Less(s.cfg.First) && !s.cfg.Last.Less(ip)
}

// offer returns the address for mac: its lease, else the first free one.
func (s *Server) offer(mac string) (netip.Addr, bool) {
	now := s.cfg.Now()
	if l, ok := s.leases[mac]; ok {
		return l.IP, true
	}
	used := map[netip.Addr]bool{}
	for _, l := range s.leases {
		if l.Expires.After(now) {
			used[l.IP] = true
		}
	}
	for ip := s.cfg.First; !s.cfg.Last.Less(ip); ip = ip.Next() {
		if !used[ip] {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func (s *Server) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	if m.OpCode != dhcpv4.OpcodeBootRequest || len(m.ClientHWAddr) != 6 {
		return
	}
	mac := m.ClientHWAddr.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	var typ dhcpv4.MessageType
	var ip netip.Addr
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		var ok bool
		if ip, ok = s.offer(mac); !ok {
			s.cfg.Logf("dhcp: no free address in %s-%s for %s", s.cfg.First, s.cfg.Last, mac)
			return
		}
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(net.IP(s.cfg.ServerIP.AsSlice())) {
			return // the client took another server's offer
		}
		want := m.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = m.ClientIPAddr
		}
		req, _ := netip.AddrFromSlice(want.To4())
		ip, _ = s.offer(mac)
		typ = dhcpv4.MessageTypeAck
		if !req.IsValid() || req != ip || !s.inRange(req) {
			typ, ip = dhcpv4.MessageTypeNak, netip.Addr{}
			s.cfg.Logf("dhcp: NAK %s asking for %s", mac, req)
			break
		}
		s.leases[mac] = Lease{MAC: mac, IP: ip, Expires: s.cfg.Now().Add(s.cfg.Lease)}
		if err := s.save(); err != nil {
			// Without a durable lease the address might be given twice
			// after a restart: refuse rather than risk it.
			s.cfg.Logf("dhcp: saving leases: %v", err)
			delete(s.leases, mac)
			return
		}
	case dhcpv4.MessageTypeRelease:
		if l, ok := s.leases[mac]; ok && l.IP.String() == m.ClientIPAddr.String() {
			delete(s.leases, mac)
			s.save()
		}
		return
	default:
		return
	}
	reply, err := s.reply(m, typ, ip)
	if err != nil {
		s.cfg.Logf("dhcp: %v", err)
		return
	}
	// A client without an address gets the answer by broadcast; one that
	// has an address (renewing) by unicast.
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	if !m.ClientIPAddr.IsUnspecified() && m.ClientIPAddr != nil && typ != dhcpv4.MessageTypeNak {
		dst.IP = m.ClientIPAddr
	}
	if _, err := conn.WriteTo(reply.ToBytes(), dst); err != nil {
		s.cfg.Logf("dhcp: answering %s: %v", mac, err)
		return
	}
	if typ == dhcpv4.MessageTypeAck {
		s.cfg.Logf("dhcp: %s is %s (%s%s)", mac, ip, clientKind(m), bootNote(reply))
	}
}

func bootNote(r *dhcpv4.DHCPv4) string {
	if f := r.BootFileNameOption(); f != "" {
		return ", boot " + f
	}
	return ""
}

// clientKind names what asks: it decides the boot file.
func clientKind(m *dhcpv4.DHCPv4) string {
	vc := m.ClassIdentifier()
	switch {
	case strings.HasPrefix(vc, protocol.VendorClass):
		return "lifeboat"
	case isIPXE(m):
		return "ipxe"
	case strings.HasPrefix(vc, "PXEClient"):
		return "pxe"
	case strings.HasPrefix(vc, "U-Boot"):
		return "u-boot"
	}
	return "other"
}

func isIPXE(m *dhcpv4.DHCPv4) bool {
	for _, uc := range m.UserClass() {
		if uc == "iPXE" {
			return true
		}
	}
	return false
}

func (s *Server) reply(m *dhcpv4.DHCPv4, typ dhcpv4.MessageType, ip netip.Addr) (*dhcpv4.DHCPv4, error) {
	sid := net.IP(s.cfg.ServerIP.AsSlice())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)),
	}
	if typ != dhcpv4.MessageTypeNak {
		mods = append(mods,
			dhcpv4.WithYourIP(net.IP(ip.AsSlice())),
			dhcpv4.WithServerIP(sid),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(s.cfg.Prefix.Bits(), 32))),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(s.cfg.Lease)),
		)
		if s.cfg.Router.IsValid() {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(net.IP(s.cfg.Router.AsSlice()))))
		}
		if len(s.cfg.DNS) > 0 {
			var dns []net.IP
			for _, d := range s.cfg.DNS {
				dns = append(dns, net.IP(d.AsSlice()))
			}
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(dns...)))
		}
		mods = append(mods, s.bootOptions(m)...)
	}
	return dhcpv4.NewReplyFromRequest(m, mods...)
}

// bootOptions picks the boot file by what the client is.
func (s *Server) bootOptions(m *dhcpv4.DHCPv4) []dhcpv4.Modifier {
	b := s.cfg.Boot
	tftp := func(file string) []dhcpv4.Modifier {
		if file == "" {
			return nil
		}
		return []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptTFTPServerName(s.cfg.ServerIP.String())),
			dhcpv4.WithOption(dhcpv4.OptBootFileName(file)),
			func(d *dhcpv4.DHCPv4) { d.BootFileName = file },
		}
	}
	switch clientKind(m) {
	case "lifeboat":
		if s.cfg.StationURL != "" {
			return []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation,
				protocol.EncodeStationOption(s.cfg.StationURL)))}
		}
	case "ipxe":
		if b.IPXE != "" {
			return []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptBootFileName(b.IPXE))}
		}
	case "pxe":
		arch := uint16(0)
		if archs := m.ClientArch(); len(archs) > 0 {
			arch = uint16(archs[0])
		}
		switch arch {
		case 0:
			return tftp(b.BIOS)
		case 7, 9:
			return tftp(b.EFI64)
		case 11:
			return tftp(b.EFIArm64)
		}
	case "u-boot":
		return tftp(b.UBoot)
	}
	return nil
}
