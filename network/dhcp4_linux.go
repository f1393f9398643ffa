package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

// getrandomNonblock fills b from the kernel without waiting for its pool;
// a variable so that tests can make it fail as it does early in boot.
var getrandomNonblock = func(b []byte) error {
	n, err := unix.Getrandom(b, unix.GRND_NONBLOCK)
	if err == nil && n != len(b) {
		err = unix.EAGAIN
	}
	return err
}

// transactionID returns a DHCP transaction id without ever waiting for
// entropy. dhcpv4.New and everything built on it (NewDiscovery,
// NewRequestFromOffer, nclient4's Request) draw the id from u-root's
// uio/rand, which spins on getrandom(GRND_NONBLOCK) until the kernel's pool
// is ready or dhcpv4.RandomTimeout (two minutes) passes: that is the boot
// stall seen in QEMU without RDRAND. Here the kernel's pool is asked once
// without waiting; if it is not ready, math/rand/v2 (seeded by the Go
// runtime from the ELF auxiliary vector, never blocking) is mixed with the
// MAC address and the time so that identical boards booting together still
// pick different ids.
func transactionID(mac net.HardwareAddr) dhcpv4.TransactionID {
	var x dhcpv4.TransactionID
	if getrandomNonblock(x[:]) == nil {
		return x
	}
	h := fnv.New64a()
	h.Write(mac)
	seed := h.Sum64() ^ uint64(time.Now().UnixNano())
	v := rand.Uint64() ^ seed
	binary.BigEndian.PutUint32(x[:], uint32(v^v>>32))
	return x
}

// newMessage builds a BOOTREQUEST like dhcpv4.New does, but with the given
// transaction id, so that no randomness is drawn (see transactionID).
func newMessage(xid dhcpv4.TransactionID, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		ClientHWAddr:  mac,
		TransactionID: xid,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options),
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

// requested are the options asked for in the parameter request list.
var requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask,
	dhcpv4.OptionRouter,
	dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionHostName,
	dhcpv4.OptionDomainName,
	dhcpv4.OptionBroadcastAddress,
	dhcpv4.OptionNTPServers,
	dhcpv4.OptionTFTPServerName,
	dhcpv4.OptionBootfileName,
	dhcpv4.OptionDNSDomainSearchList,
	dhcpv4.OptionClasslessStaticRoute,
}

// commonOptions are set on DISCOVER and REQUEST alike.
func commonOptions(cfg *Config, ip *IPParam) []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithRequestedOptions(requested...),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(cfg.VendorClass)),
	}
	host := cfg.Hostname
	if ip.Hostname != "" {
		host = ip.Hostname
	}
	if host != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(host)))
	}
	if ip.ClientIDType != 0 {
		id := append([]byte{ip.ClientIDType}, ip.ClientID...)
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id)))
	}
	return mods
}

// dhcpTransport is the part of nclient4.Client used here, so that the
// exchange can be read without a socket.
type dhcpTransport interface {
	SendAndRead(ctx context.Context, dest *net.UDPAddr, p *dhcpv4.DHCPv4, match nclient4.Matcher) (*dhcpv4.DHCPv4, error)
	RemoteAddr() *net.UDPAddr
}

// exchange runs DISCOVER, OFFER, REQUEST, ACK once.
func exchange(ctx context.Context, c dhcpTransport, mac net.HardwareAddr, common []dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	discover := newMessage(transactionID(mac), mac, append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
	}, common...)...)
	offer, err := c.SendAndRead(ctx, c.RemoteAddr(), discover, nclient4.IsMessageType(dhcpv4.MessageTypeOffer))
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	// The REQUEST in SELECTING state reuses the offer's transaction id and
	// names the chosen server and address (RFC 2131 section 4.3.2).
	request := newMessage(offer.TransactionID, mac, append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOptionCopied(offer, dhcpv4.OptionServerIdentifier),
	}, common...)...)
	ack, err := c.SendAndRead(ctx, c.RemoteAddr(), request, nclient4.IsAll(
		nclient4.IsCorrectServer(offer.ServerIdentifier()),
		nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)))
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: offer, Nak: ack}
	}
	if ack.YourIPAddr == nil || ack.YourIPAddr.IsUnspecified() {
		return nil, errors.New("ACK without an address")
	}
	return ack, nil
}

// dhcpLease gets a lease on one interface, retrying until cfg.DHCPTimeout.
func dhcpLease(ctx context.Context, cfg *Config, ip *IPParam, name string, mac net.HardwareAddr) (*dhcpv4.DHCPv4, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DHCPTimeout)
	defer cancel()
	// Retransmit after 1 s, doubling (RFC 2131 asks for 4 s first; a
	// rescue wants its address sooner and the network is usually idle),
	// for as long as ctx allows.
	client, err := nclient4.New(name,
		nclient4.WithHWAddr(mac),
		nclient4.WithTimeout(time.Second),
		nclient4.WithRetry(-1))
	if err != nil {
		return nil, fmt.Errorf("network: %s: DHCP socket: %w", name, err)
	}
	defer client.Close()

	common := commonOptions(cfg, ip)
	for {
		ack, err := exchange(ctx, client, mac, common)
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w on %s after %v", ErrNoLease, name, cfg.DHCPTimeout)
			}
			return nil, fmt.Errorf("%w on %s: %w", ErrNoLease, name, err)
		}
		cfg.logf("network: %s: DHCP: %v; retrying", name, err)
		// A NAK or a broken answer: start over after a pause.
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w on %s: %w", ErrNoLease, name, err)
		case <-time.After(time.Second):
		}
	}
}

// leaseInterface turns an ACK into the configuration to apply, with the
// ip= parameter's fields taking precedence as in the kernel.
func leaseInterface(ack *dhcpv4.DHCPv4, ip *IPParam) (Interface, error) {
	var it Interface
	it.Method = MethodDHCP
	a, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok {
		return it, fmt.Errorf("lease address %v is not IPv4", ack.YourIPAddr)
	}
	bits := -1
	if ip.Netmask.IsValid() {
		bits, _ = maskLen(ip.Netmask)
	} else if m := ack.SubnetMask(); m != nil {
		if ones, size := m.Size(); size == 32 {
			bits = ones
		}
	}
	if bits < 0 {
		m, ok := classfulMask(a)
		if !ok {
			return it, fmt.Errorf("no netmask for %v", a)
		}
		bits, _ = maskLen(m)
	}
	it.Address = netip.PrefixFrom(a, bits)

	// RFC 3442: with classless static routes, the router option is ignored.
	for _, r := range ack.ClasslessStaticRoute() {
		dst, ok := prefixFromIPNet(r.Dest)
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Router.To4())
		if gw.IsUnspecified() {
			gw = netip.Addr{}
		}
		if dst.Bits() == 0 {
			it.Gateway = gw
			continue
		}
		it.Routes = append(it.Routes, Route{Dst: dst, Gateway: gw})
	}
	if len(ack.ClasslessStaticRoute()) == 0 {
		if rs := ack.Router(); len(rs) > 0 {
			it.Gateway, _ = netip.AddrFromSlice(rs[0].To4())
		}
	}
	if ip.Gateway.IsValid() {
		it.Gateway = ip.Gateway
	}

	it.DNS = ipList(ack.DNS())
	if len(ip.DNS) > 0 {
		it.DNS = ip.DNS
	}
	it.NTP = ipList(ack.NTPServers())
	if len(ip.NTP) > 0 {
		it.NTP = ip.NTP
	}
	it.Domain = ack.DomainName()
	if l := ack.DomainSearch(); l != nil {
		it.Search = l.Labels
	}
	it.Hostname = ack.HostName()
	if ip.Hostname != "" {
		it.Hostname = ip.Hostname
	}
	it.Server, _ = netip.AddrFromSlice(ack.ServerIdentifier().To4())
	if ip.ServerIP.IsValid() {
		it.Server = ip.ServerIP
	}
	it.NextServer = ack.TFTPServerName()
	if it.NextServer == "" && ack.ServerIPAddr != nil && !ack.ServerIPAddr.IsUnspecified() {
		it.NextServer = ack.ServerIPAddr.String()
	}
	it.BootFile = ack.BootFileNameOption()
	if it.BootFile == "" {
		it.BootFile = ack.BootFileName
	}
	it.LeaseTime = ack.IPAddressLeaseTime(0)
	return it, nil
}

func ipList(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.To4()); ok && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	return out
}

func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, size := n.Mask.Size()
	if size != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}
