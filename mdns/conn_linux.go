package mdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// conn is a UDP socket bound to the group's address and port, joined to
// the group on each interface. IP_PKTINFO says which interface a query
// came in on and sends an answer out of that one.
type conn struct {
	c *net.UDPConn
}

// listen opens the socket and joins the group on each interface that has
// an IPv4 address; it returns those.
func listen(ifs []Interface, logf func(string, ...any)) (packetConn, []Interface, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			for _, o := range []struct{ level, opt, v int }{
				// Other responders on the same host (avahi) share the
				// port.
				{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
				{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1},
				{unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
				// RFC 6762 11: sent with TTL 255, so a receiver
				// knows an answer did not come through a router.
				{unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 255},
				{unix.IPPROTO_IP, unix.IP_TTL, 255},
			} {
				if err := unix.SetsockoptInt(int(fd), o.level, o.opt, o.v); err != nil {
					serr = fmt.Errorf("setsockopt %d/%d: %w", o.level, o.opt, err)
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	// Bound to the group, the socket gets the group's packets only;
	// answers go out with the interface's address as their source.
	pc, err := lc.ListenPacket(context.Background(), "udp4", Group.String())
	if err != nil {
		return nil, nil, fmt.Errorf("mdns: %w", err)
	}
	c := &conn{c: pc.(*net.UDPConn)}
	rc, err := c.c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("mdns: %w", err)
	}
	var joined []Interface
	for _, i := range ifs {
		has4 := false
		for _, p := range i.Addrs {
			has4 = has4 || p.Addr().Unmap().Is4()
		}
		if !has4 {
			continue
		}
		var jerr error
		err := rc.Control(func(fd uintptr) {
			mreq := &unix.IPMreqn{Multiaddr: Group.Addr().As4(), Ifindex: int32(i.Index)}
			jerr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)
		})
		if err == nil {
			err = jerr
		}
		if err != nil {
			logf("mdns: joining %v on %s: %v", Group.Addr(), i.Name, err)
			continue
		}
		joined = append(joined, i)
	}
	if len(joined) == 0 {
		c.Close()
		return nil, nil, errors.New("mdns: could not join the group on any interface")
	}
	return c, joined, nil
}

func (c *conn) ReadFrom(b []byte) (int, netip.AddrPort, int, error) {
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	n, oobn, _, src, err := c.c.ReadMsgUDPAddrPort(b, oob)
	if err != nil {
		return 0, src, 0, err
	}
	ifIndex := 0
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
				ifIndex = int(int32(binary.NativeEndian.Uint32(m.Data)))
			}
		}
	}
	return n, netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), ifIndex, nil
}

func (c *conn) WriteTo(b []byte, dst netip.AddrPort, ifIndex int) error {
	info := &unix.Inet4Pktinfo{Ifindex: int32(ifIndex)}
	_, _, err := c.c.WriteMsgUDPAddrPort(b, unix.PktInfo4(info), dst)
	return err
}

func (c *conn) Close() error { return c.c.Close() }
